"""The privacy check searches the tables as the checking run sees them: its own pending rows
count (they are what it would publish), another run's pending rows do not (a leak left by a
failed run of another wave must not block this one), and `raw` is never searched."""

import duckdb
import polars as pl

from lbc_pipeline.lib.io.warehouse import replace_wave, set_pending_run
from lbc_pipeline.lib.qualitative.privacy import find_leaks, text_values

TABLE = "analysis.sample_flow_reasons"


def _reasons(wave: str, reason: str) -> pl.DataFrame:
    return pl.DataFrame({"wave": [wave], "step": ["analysed"], "reason": [reason], "reason_order": [1],
                         "n_primary": [1], "n_any": [1]})


def test_text_values_are_what_the_run_would_publish(tmp_path):
    con = duckdb.connect(str(tmp_path / "lbc.duckdb"))
    replace_wave(con, {TABLE: _reasons("2018", "published reason")}, "2018")
    set_pending_run(con, "failed-run")
    replace_wave(con, {TABLE: _reasons("2017", "Wang Fang")}, "2017")  # a leak another run left pending
    set_pending_run(con, "this-run")
    replace_wave(con, {TABLE: _reasons("2019", "Li Lei")}, "2019")
    texts = text_values(con)
    assert sorted(texts[f"{TABLE}.reason"]) == ["Li Lei", "published reason"]
    assert [w for w, _ in find_leaks(texts, ["Li Lei", "Wang Fang"])] == [f"{TABLE}.reason"]
    set_pending_run(con, None)  # a consumer: the published rows only
    assert text_values(con)[f"{TABLE}.reason"] == ["published reason"]
    con.close()
