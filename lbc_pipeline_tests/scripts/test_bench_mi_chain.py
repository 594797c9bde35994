"""scripts/bench_mi_chain.py: one imputation chain of a generated wave, timed; the same
imputations from this tree and from the committed file when they are the same code."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "bench_mi_chain.py"


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, cwd=ROOT, timeout=600)


def digest(out: str) -> str:
    return re.search(r"sha256 ([0-9a-f]{16})", out).group(1)


@pytest.mark.slow
def test_a_chain_is_timed_and_the_same_code_gives_the_same_imputations(tmp_path):
    here = run("--n", "8000", "--data", str(tmp_path))
    assert here.returncode == 0, here.stderr
    assert re.search(r"rows \d+, wall [\d.]+ s, CPU [\d.]+ s", here.stdout)
    assert (tmp_path / "frame_8000.parquet").exists()  # built once, reused below
    committed = subprocess.run(["git", "log", "-1", "--format=%H", "--", "lbc_pipeline/lib/marts/missing_data.py"],
                               cwd=ROOT, capture_output=True, text=True).stdout.strip()
    changed = subprocess.run(["git", "diff", "--quiet", committed, "--", "lbc_pipeline/lib/marts/missing_data.py"],
                             cwd=ROOT).returncode
    if not committed or changed:
        pytest.skip("missing_data.py differs from its last commit (or no git history): nothing to compare")
    there = run("--n", "8000", "--data", str(tmp_path), "--at", committed)
    assert there.returncode == 0, there.stderr
    assert digest(there.stdout) == digest(here.stdout)


def test_a_wave_too_small_for_the_chain_at_scale_is_refused(tmp_path):
    small = run("--n", "1000", "--data", str(tmp_path))
    assert small.returncode == 2
    assert "MI_DIRECT_MAX_ROWS" in small.stderr
