"""The codebook reaches the warehouse: SQL users read labels from tables, not from YAML.

Each table is checked against the codebook itself (not against a copy), and the labelled view
must put the right label beside a hand-made child's codes.
"""

import duckdb
import polars as pl
import pytest

from lbc_pipeline.codebook import load_codebook
from lbc_pipeline.lib import contracts
from lbc_pipeline.lib.io.warehouse import create_views, replace_wave
from lbc_pipeline.lib.staging.codebook_tables import codebook_tables


@pytest.fixture(scope="module")
def tables():
    return codebook_tables("w")


def test_every_variable_and_special_code_is_a_row(tables):
    book = load_codebook()
    variables = tables["staging.codebook_variables"]
    assert variables.height == len(book.variables)
    assert set(variables.filter(pl.col("personal"))["variable"]) == set(book.personal_columns)
    assert set(tables["staging.codebook_special_codes"]["code"]) == set(book.special_code_reasons)


@pytest.mark.parametrize(
    ("coding", "variable", "value", "label_en"),
    [
        ("questionnaire", "gender", "2", "girl"),  # a questionnaire code as delivered
        ("analysis", "girl", "1", "girl"),  # its analysis coding (1 = girl)
        ("analysis", "mother_edu", "3", "college or above"),  # 6-8 recoded to 3
        ("analysis", "belong", "5", "strongly agree"),  # a code the models use as it is
        ("analysis", "migration_group", "mother", "Mother away"),  # the groups
    ],
)
def test_value_labels(tables, coding, variable, value, label_en):
    values = tables["staging.codebook_values"]
    row = values.filter(coding=coding, variable=variable, value=value)
    assert row["label_en"].to_list() == [label_en]
    assert row["label_zh"].item()  # every value has its Chinese label too


def test_a_value_the_codebook_does_not_have_is_absent(tables):
    # negative case: grade is an integer, not a code; mother_edu's analysis coding stops at 3
    values = tables["staging.codebook_values"]
    assert values.filter(variable="grade").height == 0
    assert values.filter(coding="analysis", variable="mother_edu", value="8").height == 0


def test_tables_have_primary_keys_and_the_labelled_view_joins(tables, tmp_path):
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    replace_wave(con, tables, "w")
    sample = pl.DataFrame({"wave": ["w"], "child_key": ["k1"], "school_id": ["S1"], "migration_group": ["mother"],
                           **{c: [1] for c in contracts.ANALYTIC_COLUMNS}, "teacher_attitude": [0.5]})
    sample = sample.with_columns(pl.lit(0).alias("father_away"), pl.lit(0).alias("both_away"), pl.lit(20).alias("depression"),
                                 pl.lit(12).alias("age"), pl.lit(7).alias("grade"), pl.lit(5).alias("belong"))
    sample = sample.select(list(contracts.dtypes("analysis.analytic_sample"))).cast(contracts.dtypes("analysis.analytic_sample"))
    replace_wave(con, {"analysis.analytic_sample": sample}, "w")
    assert "views/analysis_analytic_sample_labelled" in create_views(con, ("analysis",))
    row = con.execute("select girl_label, belong_label, migration_group_label, migration_group_label_zh "
                  "from analysis.analytic_sample_labelled").fetchone()
    assert row == ("girl", "strongly agree", "Mother away", "仅母亲外出")
    keys = con.execute("select table_name, constraint_column_names from duckdb_constraints() "
                   "where constraint_type = 'PRIMARY KEY' order by 1").fetchall()
    assert ("codebook_values", ["wave", "coding", "variable", "value"]) in keys
    # the view's columns are documented: copied from the contract or written in the SQL
    undocumented = con.execute("select column_name from duckdb_columns() where table_name = 'analytic_sample_labelled' "
                           "and comment is null").fetchall()
    assert undocumented == []
    with pytest.raises(duckdb.ConstraintException):  # the key holds
        con.execute("insert into staging.codebook_special_codes select * from staging.codebook_special_codes")
