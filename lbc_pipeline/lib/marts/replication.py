"""How close the product comes to the published numbers, and what the paper's hypotheses say.

- `replicate` sets every published coefficient (93 in Tables 2-4), R-squared and N
  beside the product's `as_published` estimate with conventional standard errors.
- `summarise_replication` condenses that per table, with a printable text.
- `inconsistencies` lists the paper's internal inconsistencies (from
  reference/inconsistencies.md) with how the product handles each.
- `hypotheses` states the verdict on H1-H3 from the Table 4 interactions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from lbc_pipeline.config import REFERENCE_DIR
from lbc_pipeline.lib import contracts
from lbc_pipeline.study import interaction_term, load_study

# The comparison's specification and SE type, tolerances and hypothesis rule are
# study.yaml's (lbc_pipeline/study.py).
_STUDY = load_study()
REFERENCE_SPECIFICATION = _STUDY.reference_specification
REFERENCE_SE_TYPE = _STUDY.reference_se_type
TOLERANCES = _STUDY.tolerances
R2_TERM = "r_squared"
N_TERM = "n_obs"
HYPOTHESIS_ALPHA = _STUDY.hypothesis_alpha
HYPOTHESIS_MIGRATION_TERM = _STUDY.hypothesis_term
INTERACTION_TABLE = _STUDY.hypothesis_table
# (id, topic, measures) of each hypothesis, as study.yaml lists them.
HYPOTHESES = tuple((h.id, h.topic, h.measures) for h in _STUDY.hypotheses)

INCONSISTENCIES_PATH = REFERENCE_DIR / "inconsistencies.md"

def reference_rows(frame: pl.DataFrame, wave: str, se_type: bool = True) -> pl.DataFrame:
    """Keep one wave's `as_published` rows (and, for coefficients, the nonrobust ones)."""
    condition = pl.col("specification") == REFERENCE_SPECIFICATION
    if se_type:
        condition &= pl.col("se_type") == REFERENCE_SE_TYPE
    if "wave" in frame.columns:
        condition &= pl.col("wave") == wave
    return frame.filter(condition)


def r2_tolerance(table_no: int, model_no: int) -> float:
    """Return the R-squared tolerance of one model."""
    return TOLERANCES.r_squared_for(table_no, model_no)


def replicate(
    coefficients: pl.DataFrame, fit: pl.DataFrame, published: dict, wave: str
) -> pl.DataFrame:
    """Compute `marts.replication`: one row per published number of Tables 2-4.

    Coefficient rows (one per model x term) compare the product's `as_published`
    nonrobust estimate with the published one: delta = estimate - published,
    delta_in_se = delta / published SE, se_ratio = SE / published SE, stars_match,
    and within_tolerance (|delta_in_se| and |se_ratio - 1| within study.yaml's
    replication tolerances). Per model, a row with term `r_squared` (tolerance
    per model, study.yaml) and one with term
    `n_obs` (must be equal) follow; their SE and star columns are null. A number
    the product did not estimate has a null estimate and within_tolerance false.
    """
    coefs = reference_rows(coefficients, wave)
    fits = reference_rows(fit, wave, se_type=False)
    estimates = {
        (r["table_no"], r["model_no"], r["term"]): r for r in coefs.iter_rows(named=True)
    }
    model_fits = {(r["table_no"], r["model_no"]): r for r in fits.iter_rows(named=True)}
    rows = []
    for model in published["models"].values():
        key = (model["table_no"], model["model_no"])
        for term, printed in model["coefs"].items():
            mine = estimates.get((*key, term))
            row = {
                "wave": wave,
                "table_no": key[0],
                "model_no": key[1],
                "term": term,
                "published_estimate": printed["b"],
                "published_se": printed["se"],
                "published_stars": printed["stars"],
            }
            if mine is None:
                rows.append({**row, "within_tolerance": False})
                continue
            delta = mine["estimate"] - printed["b"]
            delta_in_se = delta / printed["se"]
            se_ratio = mine["std_error"] / printed["se"]
            rows.append(
                {
                    **row,
                    "estimate": mine["estimate"],
                    "std_error": mine["std_error"],
                    "stars": mine["stars"],
                    "delta": delta,
                    "delta_in_se": delta_in_se,
                    "se_ratio": se_ratio,
                    "stars_match": mine["stars"] == printed["stars"],
                    "within_tolerance": abs(delta_in_se) <= TOLERANCES.estimate_in_se
                    and abs(se_ratio - 1) <= TOLERANCES.se_ratio,
                }
            )
        model_fit = model_fits.get(key)
        for term, published_value, column, tolerance in (
            (R2_TERM, model["r2"], "r_squared", r2_tolerance(*key)),
            (N_TERM, model["n"], "n_obs", 0),
        ):
            row = {
                "wave": wave,
                "table_no": key[0],
                "model_no": key[1],
                "term": term,
                "published_estimate": float(published_value),
            }
            if model_fit is None:
                rows.append({**row, "within_tolerance": False})
                continue
            delta = model_fit[column] - published_value
            rows.append(
                {
                    **row,
                    "estimate": float(model_fit[column]),
                    "delta": float(delta),
                    "within_tolerance": abs(delta) <= tolerance,
                }
            )
    return contracts.frame("marts.replication", rows)


@dataclass(frozen=True)
class ReplicationSummary:
    """The replication in brief.

    `by_table` has one row per table: n_coefficients, max_abs_delta_in_se,
    se_ratio_min, se_ratio_max, max_abs_r2_delta, stars_agree, n_within_tolerance
    (coefficients), r2_within_tolerance (models), n_obs_match (models), n_models.
    """

    by_table: pl.DataFrame
    n_coefficients: int
    stars_agree: int
    n_within_tolerance: int
    n_models: int
    r2_within_tolerance: int
    n_obs_match: int
    text: str


def summarise_replication(replication: pl.DataFrame) -> ReplicationSummary:
    """Condense `marts.replication` per table and overall, with a printable text."""
    coefs = replication.filter(~pl.col("term").is_in([R2_TERM, N_TERM]))
    r2 = replication.filter(pl.col("term") == R2_TERM)
    n_obs = replication.filter(pl.col("term") == N_TERM)
    by_coef = coefs.group_by("table_no").agg(
        pl.len().cast(pl.Int64).alias("n_coefficients"),
        pl.col("delta_in_se").abs().max().alias("max_abs_delta_in_se"),
        pl.col("se_ratio").min().alias("se_ratio_min"),
        pl.col("se_ratio").max().alias("se_ratio_max"),
        pl.col("stars_match").fill_null(False).sum().cast(pl.Int64).alias("stars_agree"),
        pl.col("within_tolerance").sum().cast(pl.Int64).alias("n_within_tolerance"),
    )
    by_r2 = r2.group_by("table_no").agg(
        pl.len().cast(pl.Int64).alias("n_models"),
        pl.col("delta").abs().max().alias("max_abs_r2_delta"),
        pl.col("within_tolerance").sum().cast(pl.Int64).alias("r2_within_tolerance"),
    )
    by_n = n_obs.group_by("table_no").agg(
        pl.col("within_tolerance").sum().cast(pl.Int64).alias("n_obs_match")
    )
    by_table = (
        by_coef.join(by_r2, on="table_no", how="full", coalesce=True)
        .join(by_n, on="table_no", how="full", coalesce=True)
        .sort("table_no")
        .select(
            "table_no",
            "n_coefficients",
            "max_abs_delta_in_se",
            "se_ratio_min",
            "se_ratio_max",
            "max_abs_r2_delta",
            "stars_agree",
            "n_within_tolerance",
            "n_models",
            "r2_within_tolerance",
            "n_obs_match",
        )
    )
    totals = {
        "n_coefficients": coefs.height,
        "stars_agree": int(coefs["stars_match"].fill_null(False).sum()),
        "n_within_tolerance": int(coefs["within_tolerance"].sum()),
        "n_models": r2.height,
        "r2_within_tolerance": int(r2["within_tolerance"].sum()),
        "n_obs_match": int(n_obs["within_tolerance"].sum()),
    }
    return ReplicationSummary(by_table=by_table, text=replication_text(by_table, totals), **totals)


def format_optional(value: float | None, spec: str) -> str:
    """Format a number, or 'n/a' when it is missing."""
    return "n/a" if value is None else format(value, spec)


def replication_text(by_table: pl.DataFrame, totals: dict[str, int]) -> str:
    """Write the replication summary as plain text, one line per table and a verdict."""
    lines = [
        f"Replication of Tables 2-4 against the published numbers "
        f"({REFERENCE_SPECIFICATION} specification, {REFERENCE_SE_TYPE} standard errors):"
    ]
    for r in by_table.iter_rows(named=True):
        lines.append(
            f"  Table {r['table_no']}: max |delta|/SE {format_optional(r['max_abs_delta_in_se'], '.3f')}, "
            f"SE ratio {format_optional(r['se_ratio_min'], '.3f')}-{format_optional(r['se_ratio_max'], '.3f')}, "
            f"max |R2 delta| {format_optional(r['max_abs_r2_delta'], '.4f')}, "
            f"stars agree {r['stars_agree']} of {r['n_coefficients']}, "
            f"within tolerance {r['n_within_tolerance']} of {r['n_coefficients']}"
        )
    lines.append(
        f"Stars agree for {totals['stars_agree']} of {totals['n_coefficients']} coefficients; "
        f"{totals['n_within_tolerance']} of {totals['n_coefficients']} coefficients, "
        f"{totals['r2_within_tolerance']} of {totals['n_models']} R-squared values and "
        f"{totals['n_obs_match']} of {totals['n_models']} sample sizes within tolerance."
    )
    lines.append(
        f"Tolerances: estimate within {TOLERANCES.estimate_in_se:g} published SE, SE within "
        f"{TOLERANCES.se_ratio:.0%}, R-squared within {TOLERANCES.r_squared:g}"
        + "".join(f" ({r2:g} for Table {t} Model {m})" for (t, m), r2 in TOLERANCES.r_squared_overrides.items())
        + ", N equal."
    )
    return "\n".join(lines)


@dataclass(frozen=True)
class Inconsistency:
    """One of the paper's inconsistencies: what the published tables show, what the product does."""

    number: int
    title: str
    finding: str
    handling: str


# How the product handles each numbered item of reference/inconsistencies.md.
HANDLING = {
    1: (
        "marts.table1 describes the children who enter the models, so its 'no parent away' "
        "and 'father away' percentages cannot equal the published ones (fractions of 367 and "
        "120); the replication compares Tables 2-4, where paper and product both use the "
        "model sample."
    ),
    2: (
        "Both codings are fitted. Specification as_published centres the measure in Table 3 "
        "and Table 4 Models 2-6 and keeps school belonging raw in Table 4 Model 1; "
        "harmonised centres every measure. The replication uses as_published, and "
        "marts.model_fit.centred records each model's coding. Centring moves main effects "
        "and the constant only, not the interactions, so the hypothesis verdicts are the "
        "same under both."
    ),
    3: (
        f"Table 4 Model 1's R-squared is compared with a wider tolerance "
        f"({TOLERANCES.r_squared_for(4, 1):g} instead of {TOLERANCES.r_squared:g}) and reported, "
        f"not forced."
    ),
    4: (
        "Not copied: the product's Table 1 is computed from the data; the published rows "
        "are not used in any comparison."
    ),
    5: (
        "The factor score is used as delivered in the analysis sample (estimated and "
        "standardised upstream on all valid questionnaires that answered the three items) "
        "and is not re-standardised on the model sample; models that centre it centre it "
        "on the analysis sample."
    ),
    6: (
        "The design matrix uses exactly these codings: grade 5/7/8/9, parents' education "
        "1-3, siblings 0/1/2, age in completed years, girl and ethnic Korean as 0/1."
    ),
    7: "Both enter the models, as in the paper; the product changes nothing.",
    8: (
        "Stars come from each coefficient's exact p-value (t distribution with the model's "
        "residual degrees of freedom) and the paper's cut-offs "
        + ", ".join(f"{cut:g}" for cut, _ in reversed(_STUDY.star_rule))
        + ", never from rounded t-values; the replication reports stars_match apart from "
        "the numeric tolerance."
    ),
    9: "marts.table1 stores 0 percent for a level nobody chose; the rendered Table 1 prints 0.00.",
}

# "1. **Title.** Finding ..." or, without a bold title, "9. Finding." (title = finding).
ITEM_PATTERN = re.compile(r"^(\d+)\.\s+(?:\*\*(.+?)\*\*)?(.*)$")


def inconsistencies(path: Path = INCONSISTENCIES_PATH) -> list[Inconsistency]:
    """List the paper's inconsistencies (the numbered items of the reference file) with their handling."""
    items: list[list] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        match = ITEM_PATTERN.match(line)
        if match:
            title = (match[2] or match[3]).strip().rstrip(".:")
            body = line[match.end(1) + 1 :].replace("**", "").strip()
            items.append([int(match[1]), title, [body]])
        elif items and line.startswith("   ") and line.strip():
            items[-1][2].append(line.strip())
    numbers = [number for number, _, _ in items]
    if sorted(numbers) != sorted(HANDLING):
        raise ValueError(
            f"{path.name} lists items {numbers}, but handling is written for {sorted(HANDLING)}"
        )
    return [
        Inconsistency(number, title, " ".join(part for part in text if part), HANDLING[number])
        for number, title, text in items
    ]


def measure_label(measure: str) -> str:
    """Name a measure in running text ('school belonging')."""
    label = _STUDY.term_label(measure)
    return label[0].lower() + label[1:]


def format_p(p_value: float) -> str:
    """Write a p-value as 'p = 0.020' or 'p < 0.001'."""
    return "p < 0.001" if p_value < 0.001 else f"p = {p_value:.3f}"


def hypotheses(coefficients: pl.DataFrame, wave: str) -> pl.DataFrame:
    """Compute `marts.hypotheses`: the verdict on H1-H3 from Table 4 (as_published, nonrobust).

    One row per hypothesis x measure: the measure's Table 4 model, its
    `mother_away:<measure>` interaction (estimate, std_error, p_value), `buffering`
    (negative with p < HYPOTHESIS_ALPHA), `supported` (the hypothesis: buffering
    for at least one of its measures) and a sentence stating what the numbers say.
    """
    coefs = reference_rows(coefficients, wave)
    found = {
        (r["model_no"], r["term"]): r
        for r in coefs.filter(pl.col("table_no") == INTERACTION_TABLE).iter_rows(named=True)
    }
    rows = []
    interaction_models = {m.moderator: m.model_no for m in _STUDY.models
                          if m.table_no == INTERACTION_TABLE and m.interactions}
    for h in _STUDY.hypotheses:
        hypothesis, topic, measures = h.id, h.topic, h.measures
        measure_rows = []
        for measure in measures:
            model_no = interaction_models[measure]
            term = interaction_term(HYPOTHESIS_MIGRATION_TERM, measure)
            row = found.get((model_no, term))
            if row is None:
                raise ValueError(
                    f"no {REFERENCE_SPECIFICATION} estimate of {term} in Table "
                    f"{INTERACTION_TABLE} Model {model_no} for wave {wave!r}"
                )
            buffering = row["estimate"] < 0 and row["p_value"] < HYPOTHESIS_ALPHA
            measure_rows.append((measure, model_no, term, row, buffering))
        supported = any(buffering for *_, buffering in measure_rows)
        buffered = [measure_label(m) for m, *_, b in measure_rows if b]
        reason = (
            f"buffering for {', '.join(buffered)}" if supported else "no measure shows buffering"
        )
        for measure, model_no, term, row, buffering in measure_rows:
            rows.append(
                {
                    "wave": wave,
                    "hypothesis": hypothesis,
                    "measure": measure,
                    "term": term,
                    "table_no": INTERACTION_TABLE,
                    "model_no": model_no,
                    "estimate": row["estimate"],
                    "std_error": row["std_error"],
                    "p_value": row["p_value"],
                    "buffering": buffering,
                    "supported": supported,
                    "sentence": hypothesis_sentence(
                        hypothesis, topic, measure, model_no, row, supported, reason
                    ),
                }
            )
    return contracts.frame("marts.hypotheses", rows)


def hypothesis_sentence(
    hypothesis: str, topic: str, measure: str, model_no: int, row: dict, supported: bool, reason: str
) -> str:
    """Say what one interaction shows and what it means for its hypothesis."""
    label = measure_label(measure)
    estimate, p_value = row["estimate"], row["p_value"]
    if p_value >= HYPOTHESIS_ALPHA:
        reading = f"not significant at {HYPOTHESIS_ALPHA:g}, so no buffering is shown"
    elif estimate < 0:
        reading = (
            f"negative and significant at {HYPOTHESIS_ALPHA:g}: the higher the {label}, the smaller "
            f"the extra depression of children whose mother is away (buffering)"
        )
    else:
        reading = (
            f"positive and significant at {HYPOTHESIS_ALPHA:g}: the extra depression of "
            f"children whose mother is away grows with {label} (no buffering)"
        )
    verdict = "supported" if supported else "not supported"
    return (
        f"{hypothesis} ({topic}): in Table {INTERACTION_TABLE} Model {model_no} the "
        f"interaction of mother away with {label} is {estimate:.3f} (SE {row['std_error']:.3f}, "
        f"{format_p(p_value)}), {reading}. {hypothesis} is {verdict} ({reason})."
    )
