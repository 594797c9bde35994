"""The robustness matrix is what a reader quotes ("H1 does not survive clustering"): each
cell must apply the hypothesis rule to the right term of the right analysis. Built from
hand-made estimate rows, one per analysis and term, so each verdict is known in advance.
"""

import pandera.errors
import polars as pl
import pytest

from lbc_pipeline.lib.marts import robustness
from lbc_pipeline.lib.marts.models import MODERATORS

TERMS = [(2, 2, "mother_away")] + [(4, k, f"mother_away:{m}") for k, m in enumerate(MODERATORS, start=1)]


def frames(p: dict[tuple[str, str], float], estimate: dict[tuple[str, str], float] | None = None):
    """Coefficient, cluster and MI frames where every term has p = 0.5 and estimate -1
    (main effect +1) unless `p` / `estimate` say otherwise for (analysis, term)."""
    estimate = estimate or {}

    def value(analysis, term):
        default = 1.0 if term == "mother_away" else -1.0
        return estimate.get((analysis, term), default), p.get((analysis, term), 0.5)

    coef_rows, cluster_rows, mi_rows = [], [], []
    for table_no, model_no, term in TERMS:
        for analysis, spec, se in (("as_published", "as_published", "nonrobust"), ("harmonised", "harmonised", "nonrobust"),
                                   ("hc3", "as_published", "HC3")):
            e, pv = value(analysis, term)
            coef_rows.append({"specification": spec, "se_type": se, "table_no": table_no, "model_no": model_no,
                              "term": term, "estimate": e, "p_value": pv})
        for analysis, name in (("wild_rademacher", "wild_rademacher"), ("wild_webb", "wild_webb"),
                               ("school_fe", "school_fe"), ("multilevel", "multilevel_class")):
            e, pv = value(analysis, term)
            cluster_rows.append({"analysis": name, "table_no": table_no, "model_no": model_no, "term": term,
                                 "estimate": e, "p_value": pv})
        e, pv = value("multiple_imputation", term)
        mi_rows.append({"table_no": table_no, "model_no": model_no, "term": term, "estimate": e, "p_value": pv})
    return pl.DataFrame(coef_rows), pl.DataFrame(cluster_rows), pl.DataFrame(mi_rows)


def cell(matrix: pl.DataFrame, hypothesis: str, analysis: str) -> dict:
    return matrix.filter((pl.col("hypothesis") == hypothesis) & (pl.col("analysis") == analysis)).row(0, named=True)


@pytest.mark.parametrize(("p", "estimate", "hypothesis", "analysis", "supported", "measure"), [
    # H1 buffering as published: negative belong interaction, p = 0.01
    ({("as_published", "mother_away:belong"): 0.01}, None, "H1", "as_published", True, "belong"),
    # the same p but a positive interaction is not buffering
    ({("as_published", "mother_away:belong"): 0.01}, {("as_published", "mother_away:belong"): 2.0},
     "H1", "as_published", False, "belong"),
    # H3: two measures significant under MI; the decisive one has the smaller p
    ({("multiple_imputation", "mother_away:best_friends"): 0.04,
      ("multiple_imputation", "mother_away:class_closeness"): 0.001}, None, "H3", "multiple_imputation", True,
     "class_closeness"),
    # H2 not supported: the decisive measure is the smallest p among the non-significant ones
    ({("hc3", "mother_away:ht_satisfaction"): 0.06}, None, "H2", "hc3", False, "ht_satisfaction"),
    # main effect: positive and p < 0.05 under the Webb bootstrap
    ({("wild_webb", "mother_away"): 0.03}, None, "main", "wild_webb", True, "mother_away"),
    # p exactly 0.05 is not below the level
    ({("school_fe", "mother_away"): 0.05}, None, "main", "school_fe", False, "mother_away"),
])
def test_each_cell_applies_the_hypothesis_rule(p, estimate, hypothesis, analysis, supported, measure):
    matrix = robustness.robustness_matrix(*frames(p, estimate), "t")
    row = cell(matrix, hypothesis, analysis)
    assert row["supported"] is supported and row["measure"] == measure
    assert row["verdict"] == ("supported" if supported else "not supported")


def test_agreement_is_measured_against_the_published_verdict_and_lines_read_it():
    p = {("as_published", "mother_away:belong"): 0.01, ("hc3", "mother_away:belong"): 0.01}
    matrix = robustness.robustness_matrix(*frames(p), "t")
    assert matrix.height == 4 * len(robustness.ANALYSES)
    assert cell(matrix, "H1", "hc3")["agrees_with_published"]
    assert not cell(matrix, "H1", "wild_webb")["agrees_with_published"]
    assert cell(matrix, "H2", "wild_webb")["agrees_with_published"]  # both not supported
    lines = robustness.robustness_lines(matrix)
    assert len(lines) == 4 and lines[0].startswith("  main")
    assert "H1 (school belonging): published yes, harmonised no, HC3 yes" in lines[1]


def test_a_missing_estimate_is_named():
    coef, cluster, mi = frames({})
    with pytest.raises(ValueError, match="multiple_imputation estimate of mother_away:belong"):
        robustness.robustness_matrix(coef, cluster, mi.filter(pl.col("term") != "mother_away:belong"), "t")


def test_contract_refuses_an_unknown_analysis():
    matrix = robustness.robustness_matrix(*frames({}), "t")
    with pytest.raises(pandera.errors.SchemaError):
        robustness.ROBUSTNESS_CONTRACT.validate(matrix.with_columns(analysis=pl.lit("bayesian")))
