"""Where each wave stands: published (by which run, when) or not, and why not.

Read from the committed releases (what consumers see) and each wave's working database
(what its last run left: the blocking checks that failed). A working database that a run
holds right now is reported as busy, not waited for.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import os
from dataclasses import dataclass, field

import duckdb

from lbc_pipeline.config import every_wave, restricted_dir, working_path
from lbc_pipeline.lib.io.publish import CROSS_WAVE, blocking_failures, live_versions
from lbc_pipeline.lib.io.warehouse import has_table, lock_path


@dataclass
class WaveStatus:
    """One wave: its publication (if any) and what its working database says."""

    wave: str
    published_run: str | None = None
    published_at: dt.datetime | None = None
    delivered: bool = False
    working: str = "none"  # none | busy | built | blocked
    blocking: list[str] = field(default_factory=list)

    @property
    def published(self) -> bool:
        return self.published_run is not None


def _working_state(wave: str) -> tuple[str, list[str]]:
    path = working_path(wave)
    if not path.exists():
        return "none", []
    lock = lock_path(path)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return "busy", []
        try:
            con = duckdb.connect(str(path), read_only=True)
        except duckdb.IOException:
            return "busy", []
        try:
            failures = blocking_failures(con, wave)
            built = has_table(con, "analysis.check_results")
        finally:
            con.close()
    finally:
        os.close(fd)
    if failures:
        return "blocked", failures
    return ("built" if built else "none"), []


def wave_statuses(waves: list[str] | None = None) -> list[WaveStatus]:
    """Every wave that is delivered, has a working database or is published (or just
    `waves`), in id order."""
    live = live_versions()
    delivered = {m.wave for m in every_wave()}
    working = {p.parent.name for p in (restricted_dir() / "waves").glob("*/work.duckdb")}
    known = sorted((delivered | working | set(live)) - {CROSS_WAVE})
    out = []
    for wave in waves or known:
        status = WaveStatus(wave, delivered=wave in delivered)
        if wave in live:
            status.published_run, status.published_at = live[wave]
        status.working, status.blocking = _working_state(wave)
        out.append(status)
    return out


def describe(status: WaveStatus, last_run: tuple[str, str] | None = None) -> str:
    """One paragraph on a wave for people: published or not, and the blocking reason."""
    if status.published:
        head = (f"wave {status.wave}: published (run {status.published_run}, "
                f"{status.published_at:%Y-%m-%d %H:%M:%S} UTC)")
    else:
        head = f"wave {status.wave}: NOT PUBLISHED"
    lines = [head]
    if last_run is not None:
        lines.append(f"  last run {last_run[0]}: {last_run[1]}")
    if status.working == "blocked":
        lines.append("  stopped by " + "; ".join(status.blocking))
        lines.append(f"  retry after fixing the delivery or the threshold: lbc run --wave {status.wave}")
    elif status.working == "busy":
        lines.append("  a run of this wave is in progress")
    elif not status.published and not status.delivered:
        lines.append("  no delivery folder holds this wave any more")
    elif not status.published:
        lines.append(f"  not run to the end yet: lbc run --wave {status.wave}")
    return "\n".join(lines)
