"""Adding a model is one entry in study.yaml: nothing else is edited.

The study definition is the one place that lists the paper's models. A throwaway model is
added to a copy of it (LBC_STUDY_FILE) and the real `lbc run` must fit it, lay it out as a
publication table, put it in the report and document it in the warehouse.
"""

import json
import os
import shutil
import subprocess
import sys

import duckdb
import yaml

from lbc_pipeline.config import PROJECT_ROOT
from lbc_pipeline.study import STUDY_PATH


def test_a_model_added_to_the_study_is_fitted_tabled_reported_and_documented(tmp_path):
    study = yaml.safe_load(STUDY_PATH.read_text(encoding="utf-8"))
    study["models"].append({"table": 5, "model": 1, "controls": False, "moderator": "peer_satisfaction", "interactions": True})
    variant = tmp_path / "study.yaml"
    variant.write_text(yaml.safe_dump(study, allow_unicode=True), encoding="utf-8")
    data = tmp_path / "data"
    shutil.copytree(PROJECT_ROOT / "data" / "raw" / "2019", data / "raw" / "2019")
    (tmp_path / "key").write_text("ef" * 32)
    env = {**os.environ, "LBC_STUDY_FILE": str(variant), "LBC_DATA_DIR": str(data),
           "LBC_DUCKDB_PATH": str(data / "warehouse" / "lbc.duckdb"), "LBC_PSEUDONYM_KEY_FILE": str(tmp_path / "key"),
           "DAGSTER_HOME": str(tmp_path / "dagster_home")}
    run = subprocess.run([sys.executable, "-m", "lbc_pipeline.cli", "run", "--wave", "2019"], env=env,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]

    with duckdb.connect(str(data / "warehouse" / "lbc.duckdb"), read_only=True) as con:
        terms = [t for (t,) in con.execute(
            "select term from marts.model_coefficients where table_no = 5 and specification = 'as_published' "
            "and se_type = 'nonrobust' order by term").fetchall()]
        table_no_doc = con.execute(
            "select comment from duckdb_columns() where schema_name = 'marts' and table_name = 'model_coefficients' "
            "and column_name = 'table_no'").fetchone()[0]
    # fitted: migration dummies, the moderator and its three interactions, no controls
    assert "mother_away:peer_satisfaction" in terms and "girl" not in terms and len(terms) == 8
    # tabled and reported
    reports = data / "reports" / "2019"
    assert (reports / "table_5.md").exists() and (reports / "table_5_harmonised.csv").exists()
    assert "Table 5" in (reports / "report.html").read_text(encoding="utf-8")
    # documented: its artifact, and the warehouse's column comment names the new table
    artifact = json.loads((data / "artifacts" / "2019" / "as_published_table5_model1.json").read_text())
    assert artifact["label"] == "Table 5 Model 1"
    assert "5" in table_no_doc.split(":", 1)[1]
