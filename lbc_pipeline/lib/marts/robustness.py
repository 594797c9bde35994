"""The robustness matrix: each claim of the paper against each way of analysing the data.

Claims: `main` (children whose mother is away are more depressed: mother_away in Table 2
Model 2, positive with p < 0.05) and H1-H3 (buffering: a negative mother_away x measure
interaction in Table 4 with p < 0.05 for at least one of the hypothesis's measures, as in
`marts.hypotheses`). Analyses, in order:

- as_published: the paper's coding, conventional SEs (marts.model_coefficients)
- harmonised: every moderator centred, conventional SEs
- hc3: as published, HC3 SEs
- wild_rademacher / wild_webb: school-clustered, wild cluster bootstrap p (marts.cluster_sensitivity)
- school_fe: school fixed effects, conventional SEs
- multilevel: random intercept for class
- multiple_imputation: 926 valid questionnaires, 20 imputations, Rubin's rules (marts.mi_coefficients)
"""

from __future__ import annotations

import pandera.polars as pa
import polars as pl

from lbc_pipeline.lib.contracts import WAVE, register
from lbc_pipeline.lib.marts.models import MODERATORS, interaction_term
from lbc_pipeline.lib.marts.replication import HYPOTHESES, HYPOTHESIS_ALPHA, HYPOTHESIS_MIGRATION_TERM, INTERACTION_TABLE

MAIN = ("main", "mother away (main effect)", "mother_away", 2, 2)
ANALYSES = {
    "as_published": "as published (conventional SEs)",
    "harmonised": "every moderator centred (conventional SEs)",
    "hc3": "HC3 standard errors",
    "wild_rademacher": "wild cluster bootstrap by school, Rademacher (4 schools: p >= 0.125)",
    "wild_webb": "wild cluster bootstrap by school, Webb six-point (p >= 0.0046)",
    "school_fe": "school fixed effects",
    "multilevel": "random intercept for class",
    "multiple_imputation": "multiple imputation (chained equations, Rubin's rules)",
}
SHORT = {"as_published": "published", "harmonised": "harmonised", "hc3": "HC3", "wild_rademacher": "wild-Rademacher",
         "wild_webb": "wild-Webb", "school_fe": "school FE", "multilevel": "multilevel", "multiple_imputation": "MI"}

ROBUSTNESS_SCHEMA = {
    "wave": pl.String, "hypothesis": pl.String, "claim": pl.String, "analysis": pl.String, "analysis_order": pl.Int64,
    "description": pl.String, "measure": pl.String, "term": pl.String, "table_no": pl.Int64, "model_no": pl.Int64,
    "estimate": pl.Float64, "p_value": pl.Float64, "supported": pl.Boolean, "verdict": pl.String,
    "measures_supported": pl.String, "agrees_with_published": pl.Boolean,
}


def estimates_by_analysis(coefficients: pl.DataFrame, cluster: pl.DataFrame, mi: pl.DataFrame) -> pl.DataFrame:
    """One row per analysis x table x model x term: (estimate, p_value) as each analysis reports it."""
    keys = ["table_no", "model_no", "term", "estimate", "p_value"]

    def coefs(spec: str, se: str, p_column: str = "p_value") -> pl.DataFrame:
        return coefficients.filter((pl.col("specification") == spec) & (pl.col("se_type") == se)).select(
            *keys[:4], pl.col(p_column).alias("p_value"))

    parts = {
        "as_published": coefs("as_published", "nonrobust"),
        "harmonised": coefs("harmonised", "nonrobust"),
        "hc3": coefs("as_published", "HC3"),
        "wild_rademacher": cluster.filter(pl.col("analysis") == "wild_rademacher").select(keys),
        "wild_webb": cluster.filter(pl.col("analysis") == "wild_webb").select(keys),
        "school_fe": cluster.filter(pl.col("analysis") == "school_fe").select(keys),
        "multilevel": cluster.filter(pl.col("analysis") == "multilevel_class").select(keys),
        "multiple_imputation": mi.select(keys),
    }
    return pl.concat([p.with_columns(pl.lit(a).alias("analysis")) for a, p in parts.items()])


def robustness_matrix(coefficients: pl.DataFrame, cluster: pl.DataFrame, mi: pl.DataFrame, wave: str) -> pl.DataFrame:
    """`marts.robustness`: one row per claim (main, H1-H3) x analysis with the verdict.

    For a hypothesis with several measures, `measure`, `estimate` and `p_value` are those of
    the decisive measure: the most significant buffering one when supported, else the one
    with the smallest p; `measures_supported` lists every measure showing buffering.
    """
    found = {(r["analysis"], r["table_no"], r["model_no"], r["term"]): r
             for r in estimates_by_analysis(coefficients, cluster, mi).iter_rows(named=True)}
    claims = [(MAIN[0], MAIN[1], [(MAIN[2], MAIN[3], MAIN[4], MAIN[2])])]
    for hypothesis, topic, measures in HYPOTHESES:
        claims.append((hypothesis, topic, [
            (m, INTERACTION_TABLE, MODERATORS.index(m) + 1, interaction_term(HYPOTHESIS_MIGRATION_TERM, m))
            for m in measures]))
    rows, published = [], {}
    for order, analysis in enumerate(ANALYSES, start=1):
        for hypothesis, claim, measures in claims:
            candidates = []
            for measure, table_no, model_no, term in measures:
                r = found.get((analysis, table_no, model_no, term))
                if r is None:
                    raise ValueError(f"wave {wave!r}: no {analysis} estimate of {term} in Table {table_no} Model {model_no}")
                direction = r["estimate"] > 0 if hypothesis == "main" else r["estimate"] < 0
                candidates.append((measure, table_no, model_no, term, r, direction and r["p_value"] < HYPOTHESIS_ALPHA))
            supporting = [c for c in candidates if c[5]]
            decisive = min(supporting or candidates, key=lambda c: c[4]["p_value"])
            supported = bool(supporting)
            if analysis == "as_published":
                published[hypothesis] = supported
            rows.append({
                "wave": wave, "hypothesis": hypothesis, "claim": claim, "analysis": analysis, "analysis_order": order,
                "description": ANALYSES[analysis], "measure": decisive[0], "term": decisive[3],
                "table_no": decisive[1], "model_no": decisive[2], "estimate": decisive[4]["estimate"],
                "p_value": decisive[4]["p_value"], "supported": supported,
                "verdict": "supported" if supported else "not supported",
                "measures_supported": ", ".join(c[0] for c in supporting) or None,
                "agrees_with_published": supported == published[hypothesis],
            })
    claim_order = {h: i for i, (h, *_rest) in enumerate(claims)}
    frame = (pl.DataFrame(rows, schema=ROBUSTNESS_SCHEMA)
             .sort(pl.col("hypothesis").replace_strict(claim_order, return_dtype=pl.Int64), "analysis_order"))
    return ROBUSTNESS_CONTRACT.validate(frame)


def robustness_lines(matrix: pl.DataFrame) -> list[str]:
    """One line per claim: its verdict under each analysis ('yes'/'no'), for `lbc replication`."""
    lines = []
    for (hypothesis,), part in matrix.sort("analysis_order").group_by("hypothesis", maintain_order=True):
        claim = part["claim"][0]
        cells = ", ".join(f"{SHORT[r['analysis']]} {'yes' if r['supported'] else 'no'}" for r in part.iter_rows(named=True))
        lines.append(f"  {hypothesis} ({claim}): {cells}")
    return lines


def robustness_summary(con, wave: str) -> list[str]:
    """Lines for `lbc replication`: a heading and one line per claim from `marts.robustness`
    in the warehouse (`con`: DuckDB); none when the table or the wave is absent."""
    present = con.sql("select count(*) from information_schema.tables "
                      "where table_schema = 'marts' and table_name = 'robustness'").fetchall()[0][0]
    if not present:
        return []
    matrix = con.sql("select * from marts.robustness where wave = $w", params={"w": wave}).pl()
    if matrix.height == 0:
        return []
    heading = "\nRobustness (marts.robustness; supported yes/no under each analysis):"
    return [heading, *robustness_lines(matrix)]


ROBUSTNESS_CONTRACT = register("marts.robustness", pa.DataFrameSchema({
    "wave": WAVE,
    "hypothesis": pa.Column(pl.String, pa.Check.isin(["main", "H1", "H2", "H3"]), description="main (mother-away effect) or H1-H3 (buffering)"),
    "claim": pa.Column(pl.String, description="What the claim is about"),
    "analysis": pa.Column(pl.String, pa.Check.isin(list(ANALYSES)), description="; ".join(f"{k}: {v}" for k, v in ANALYSES.items())),
    "analysis_order": pa.Column(pl.Int64, description="Position of the analysis in the matrix (1 = as published)"),
    "description": pa.Column(pl.String, description="The analysis in words"),
    "measure": pa.Column(pl.String, description="The decisive measure: the most significant buffering one when supported, else the smallest p"),
    "term": pa.Column(pl.String, description="Its term (mother_away or mother_away:<measure>)"),
    "table_no": pa.Column(pl.Int64, description="The paper's table of the term"),
    "model_no": pa.Column(pl.Int64, description="The model of the term"),
    "estimate": pa.Column(pl.Float64, description="The term's estimate under the analysis"),
    "p_value": pa.Column(pl.Float64, pa.Check.in_range(0, 1), description="The term's p-value under the analysis"),
    "supported": pa.Column(pl.Boolean, description=f"main: positive with p < {HYPOTHESIS_ALPHA:g}; H1-H3: some measure's interaction negative with p < {HYPOTHESIS_ALPHA:g}"),
    "verdict": pa.Column(pl.String, pa.Check.isin(["supported", "not supported"]), description="supported or not supported"),
    "measures_supported": pa.Column(pl.String, nullable=True, description="Every measure that supports the claim under the analysis"),
    "agrees_with_published": pa.Column(pl.Boolean, description="The verdict equals the as_published one"),
}, strict=True, unique=["wave", "hypothesis", "analysis"],
    description="One row per wave x claim (main effect, H1-H3) x analysis: does the paper's verdict survive?"))
