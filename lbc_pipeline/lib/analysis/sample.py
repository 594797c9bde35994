"""The sample flow: from questionnaires handed out to the children in the models.

Order (instrument.md section 3): keying duplicates -> invalid questionnaires -> deceased
parents -> missing values. Every questionnaire that leaves keeps all the reasons that apply
and the first of them (in the codebook's order) as its primary reason, so that the counts of
each step add up: n_before = n_excluded + n_after.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from lbc_pipeline.codebook import load_codebook
from lbc_pipeline.config import WaveManifest, pseudonym_key_path
from lbc_pipeline.lib.analysis.derive import (
    FactorSolution,
    Reliability,
    add_teacher_attitude,
    derive_measures,
    scale_reliability,
)

# Exclusion variable -> the staging variables its missingness rests on (for `detail`).
_DETAIL_SOURCES = {
    "depression": tuple(f"dep{i}" for i in range(1, 7)),
    "age": ("survey_date", "birth_year", "birth_month"),
}
_ANALYSIS_NAMES = {"siblings": "siblings_3", "mother_edu": "mother_edu_3", "father_edu": "father_edu_3"}


@dataclass(frozen=True)
class SampleResult:
    """Every analysis-layer table of one wave."""

    measures: pl.DataFrame
    factor: FactorSolution
    exclusions: pl.DataFrame
    flow: pl.DataFrame
    flow_reasons: pl.DataFrame
    status: pl.DataFrame
    analytic_sample: pl.DataFrame
    reliability: list[Reliability]


# ------------------------------------------------------------------ pseudonyms
def pseudonym_key(path: Path | None = None) -> bytes:
    """The secret behind child keys; created (0600) on first use, outside the repository."""
    path = path or pseudonym_key_path()
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32))
    return bytes.fromhex(path.read_text().strip())


def child_key(key: bytes, wave: str, qid: str) -> str:
    """Pseudonymous, stable key of a child: HMAC-SHA256 of wave and qid, 20 hex digits."""
    return hmac.new(key, f"{wave}\x1f{qid}".encode(), hashlib.sha256).hexdigest()[:20]


_SHA256_BLOCK = 64
_CHILD_KEYS_SQL = """
select qid,
       left(sha256($opad || unhex(sha256($ipad || encode($prefix || qid)))), 20) as child_key
from qids
"""


def child_keys(key: bytes, wave: str, qids: pl.Series) -> pl.DataFrame:
    """`child_key` of every qid at once: (qid, child_key) rows, the same values as `child_key`.

    HMAC is H((K ^ opad) || H((K ^ ipad) || message)) (RFC 2104) with K the key padded to
    SHA-256's 64-byte block (hashed first when longer). Python builds the two padded keys;
    DuckDB's vectorised sha256 hashes every message, without a Python call per row. The key
    only passes to an in-memory DuckDB connection as a query parameter.
    """
    import duckdb

    block = hashlib.sha256(key).digest() if len(key) > _SHA256_BLOCK else key
    block = block.ljust(_SHA256_BLOCK, b"\x00")
    ipad = bytes(b ^ 0x36 for b in block)
    opad = bytes(b ^ 0x5C for b in block)
    frame = pl.DataFrame({"qid": qids.cast(pl.String)})  # noqa: F841 (scanned by DuckDB)
    with duckdb.connect() as con:
        con.register("qids", frame)
        return con.sql(_CHILD_KEYS_SQL, params={"opad": opad, "ipad": ipad, "prefix": f"{wave}\x1f"}).pl()


# ------------------------------------------------------------------ rules
def _with_reason_list(frame: pl.DataFrame, flags: dict[str, pl.Expr], alias: str) -> pl.DataFrame:
    """Add `alias`: a list column of the names whose flag is true, in the dict's order.

    The flags are packed into one integer per row and each distinct combination's list is
    built once and joined on: a concatenation of one list per flag would allocate
    rows x flags list slots (gigabytes at a million questionnaires).
    """
    names = list(flags)
    mask = pl.sum_horizontal([flag.cast(pl.Int64) * (1 << i) for i, flag in enumerate(flags.values())])
    frame = frame.with_columns(mask.alias("__mask"))
    masks = frame["__mask"].unique().sort().to_list()
    lookup = pl.DataFrame(
        {"__mask": masks, alias: [[n for i, n in enumerate(names) if m >> i & 1] for m in masks]},
        schema={"__mask": pl.Int64, alias: pl.List(pl.String)},
    )
    return frame.join(lookup, on="__mask", how="left", maintain_order="left").drop("__mask")


def _joined_details(details: list[pl.Expr]) -> pl.Expr:
    """The non-null details, joined with '; ' (rows without any never reach an output)."""
    return pl.concat_str(details, separator="; ", ignore_nulls=True)


def invalid_flags(measures: pl.DataFrame, blank_counts: pl.DataFrame, schools: list[str],
                  manifest: WaveManifest) -> pl.DataFrame:
    """Add `invalid_reasons` (list, codebook order) and `blank_items` to the measures."""
    book = load_codebook()
    low, high = book.population_age
    frame = measures.join(blank_counts, on="qid", how="left").with_columns(
        pl.col("blank_items").fill_null(0)
    )
    outside_window = pl.lit(False)
    if manifest.has_fieldwork:
        outside_window = pl.col("survey_date").is_not_null() & (
            (pl.col("survey_date") < manifest.fieldwork_start)
            | (pl.col("survey_date") > manifest.fieldwork_end)
        )
    flags = {
        "conflicting_duplicate": pl.col("duplicate_status") == "conflicting",
        "outside_population": (pl.col("age").is_not_null() & ((pl.col("age") < low) | (pl.col("age") > high)))
        | (pl.col("grade").is_not_null() & ~pl.col("grade").is_in(list(book.population_grades))),
        "largely_blank": pl.col("blank_items") >= book.largely_blank_threshold,
        "unknown_school": pl.col("school_id").is_null() | ~pl.col("school_id").is_in(schools),
        "outside_fieldwork": outside_window,
    }
    assert tuple(flags) == book.invalid_reason_names, "codebook and rules disagree on invalid reasons"
    details = {
        "conflicting_duplicate": pl.lit("qid keyed with different answers"),
        "outside_population": pl.format("age={}, grade={}", pl.col("age"), pl.col("grade")),
        "largely_blank": pl.format("{} of 31 substantive items empty or refused", pl.col("blank_items")),
        "unknown_school": pl.format("school_id={}", pl.col("school_id")),
        "outside_fieldwork": pl.format("survey_date={}", pl.col("survey_date")),
    }
    frame = _with_reason_list(frame, {k: v.fill_null(False) for k, v in flags.items()}, "invalid_reasons")
    return frame.with_columns(
        _joined_details(
            [pl.when(flags[k].fill_null(False)).then(details[k]).otherwise(pl.lit(None, dtype=pl.String)) for k in flags]
        ).alias("invalid_detail"),
    )


def count_blank_items(missing_values: pl.DataFrame) -> pl.DataFrame:
    """Per qid, how many substantive items are empty or refused (-9)."""
    book = load_codebook()
    return (
        missing_values.filter(
            pl.col("variable").is_in(list(book.substantive_items))
            & pl.col("reason").is_in(list(book.blank_reasons))
        )
        .group_by("qid").agg(pl.len().cast(pl.Int64).alias("blank_items"))
    )


def _missing_detail(missing_values: pl.DataFrame, variables: tuple[str, ...], alias: str) -> pl.DataFrame:
    """Per qid, `variable=reason` for each of `variables` that is missing (sorted, joined)."""
    return (
        missing_values.filter(pl.col("variable").is_in(list(variables)))
        .group_by("qid")
        .agg(pl.format("{}={}", "variable", "reason").sort().str.join(", ").alias(alias))
    )


def _missing_details(missing_values: pl.DataFrame, variables: list[str]) -> pl.DataFrame:
    """Per qid, one `__detail_<variable>` column for each exclusion variable: what
    `_missing_detail` gives for it, for every variable in one pass (one group-by, one pivot)
    instead of a group-by and a join per variable."""
    sources = {source: v for v in variables for source in _DETAIL_SOURCES.get(v, (v,))}
    assert len(sources) == sum(len(_DETAIL_SOURCES.get(v, (v,))) for v in variables), "a source feeds two variables"
    long = (
        missing_values.filter(pl.col("variable").is_in(list(sources)))
        .with_columns(pl.col("variable").replace_strict(sources, return_dtype=pl.String).alias("__for"))
        .group_by("qid", "__for")
        .agg(pl.format("{}={}", "variable", "reason").sort().str.join(", ").alias("detail"))
        .with_columns(("__detail_" + pl.col("__for")).alias("__for"))
    )
    if long.height == 0:
        return pl.DataFrame(schema={"qid": pl.String})
    return long.pivot(on="__for", index="qid", values="detail")


def exclusion_flags(measures: pl.DataFrame, missing_values: pl.DataFrame) -> pl.DataFrame:
    """Add `exclusion_reasons` (deceased parent, then missing model variables, in the
    codebook's order) and `exclusion_detail` (what each reason rests on, e.g.
    `missing_mother_edu: mother_edu=dont_know`)."""
    book = load_codebook()
    variables = [v for v in book.exclusion_order if v != "deceased_parent"]
    frame = measures.join(_missing_details(missing_values, variables), on="qid", how="left")
    flags: dict[str, pl.Expr] = {}
    details: list[pl.Expr] = []
    for variable in book.exclusion_order:
        if variable == "deceased_parent":
            name, flag = variable, pl.col("deceased_parent")
            detail = pl.format("mother_alive={}, father_alive={}", pl.col("mother_alive"), pl.col("father_alive"))
        else:
            name, flag = f"missing_{variable}", pl.col(_ANALYSIS_NAMES.get(variable, variable)).is_null()
            column = f"__detail_{variable}"
            if column not in frame.columns:
                frame = frame.with_columns(pl.lit(None, dtype=pl.String).alias(column))
            derived = {"migration_group": "migration_missing_reason", "age": "age_missing_reason"}.get(variable)
            detail = pl.coalesce(pl.col(column), pl.col(derived)) if derived else pl.col(column)
        flags[name] = flag.fill_null(False)
        details.append(pl.when(flags[name]).then(pl.format("{}: {}", pl.lit(name), detail.fill_null(pl.lit("missing")))))
    frame = _with_reason_list(frame, flags, "exclusion_reasons")
    return frame.with_columns(
        _joined_details(details).alias("exclusion_detail"),
    ).drop(pl.selectors.starts_with("__detail_"))


# ------------------------------------------------------------------ flow
def sample_flow(wave: str, distributed: int, status: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """`analysis.sample_flow` and `analysis.sample_flow_reasons` from the status table."""
    book = load_codebook()
    returned = status.height
    invalid = status.filter(pl.col("status") == "invalid").height
    deceased = status.filter(pl.col("primary_reason") == "deceased_parent").height
    missing = status.filter(
        (pl.col("status") == "excluded") & (pl.col("primary_reason") != "deceased_parent")
    ).height
    valid = returned - invalid
    steps = [
        ("distributed", distributed, 0, distributed, "questionnaires handed out"),
        ("returned", distributed, distributed - returned, returned, "not_returned"),
        ("valid", returned, invalid, valid, "invalid questionnaire"),
        ("parents_alive", valid, deceased, valid - deceased, "deceased_parent"),
        ("analysed", valid - deceased, missing, valid - deceased - missing, "missing value on a model variable"),
    ]
    flow = pl.DataFrame(
        [{"wave": wave, "step_order": i, "step": s, "n_before": b, "n_excluded": e, "n_after": a, "reason": r}
         for i, (s, b, e, a, r) in enumerate(steps, start=1)],
        schema={"wave": pl.String, "step_order": pl.Int64, "step": pl.String, "n_before": pl.Int64,
                "n_excluded": pl.Int64, "n_after": pl.Int64, "reason": pl.String},
    )
    order = {r: i for i, r in enumerate((*book.invalid_reason_names, *book.exclusion_reasons), start=1)}
    rows = [{"wave": wave, "step": "returned", "reason": "not_returned", "reason_order": 0,
             "n_primary": distributed - returned, "n_any": distributed - returned}]
    for reason, position in order.items():
        step = ("valid" if reason in book.invalid_reason_names
                else "parents_alive" if reason == "deceased_parent" else "analysed")
        rows.append({
            "wave": wave, "step": step, "reason": reason, "reason_order": position,
            "n_primary": status.filter(pl.col("primary_reason") == reason).height,
            "n_any": status.filter(pl.col("reasons").list.contains(reason)).height,
        })
    reasons = pl.DataFrame(rows, schema={"wave": pl.String, "step": pl.String, "reason": pl.String,
                                         "reason_order": pl.Int64, "n_primary": pl.Int64, "n_any": pl.Int64})
    return flow, reasons


# ------------------------------------------------------------------ the whole stage
def build_sample(questionnaires: pl.DataFrame, missing_values: pl.DataFrame,
                 distribution: pl.DataFrame, manifest: WaveManifest, wave: str,
                 key: bytes) -> SampleResult:
    """Derive measures, apply the validity and exclusion rules, and build the sample."""
    from lbc_pipeline.lib.contracts import ANALYTIC_COLUMNS, schema_for  # pandera: slow to import

    book = load_codebook()
    measures = derive_measures(questionnaires)
    measures = invalid_flags(measures, count_blank_items(missing_values),
                             distribution["school_id"].to_list(), manifest)
    valid_mask = measures["invalid_reasons"].list.len() == 0
    measures, factor = add_teacher_attitude(measures, valid_mask)
    measures = exclusion_flags(measures, missing_values)

    status_expr = (
        pl.when(pl.col("invalid_reasons").list.len() > 0).then(pl.lit("invalid"))
        .when(pl.col("exclusion_reasons").list.len() > 0).then(pl.lit("excluded"))
        .otherwise(pl.lit("analysed"))
    )
    measures = measures.with_columns(status_expr.alias("status")).with_columns(
        pl.when(pl.col("status") == "invalid").then(pl.col("invalid_reasons"))
        .when(pl.col("status") == "excluded").then(pl.col("exclusion_reasons"))
        .otherwise(pl.lit([], dtype=pl.List(pl.String))).alias("reasons"),
        pl.when(pl.col("status") == "invalid").then(pl.col("invalid_detail"))
        .when(pl.col("status") == "excluded").then(pl.col("exclusion_detail"))
        .otherwise(None).alias("detail"),
    ).with_columns(pl.col("reasons").list.first().alias("primary_reason"))

    status = measures.select(
        pl.lit(wave).alias("wave"), "qid", "school_id", "status", "primary_reason", "girl", "grade",
        "migration_group", "reasons",
    )
    exclusions = measures.filter(pl.col("status") != "analysed").select(
        pl.lit(wave).alias("wave"), "qid",
        pl.col("status").alias("stage"),
        "primary_reason", "reasons", "detail", "school_id",
    )
    flow, flow_reasons = sample_flow(wave, int(distribution["distributed"].sum()), status)

    analysed = measures.filter(pl.col("status") == "analysed")
    analysed = analysed.join(child_keys(key, wave, analysed["qid"]), on="qid", how="left")
    analytic = analysed.select(
        pl.lit(wave).alias("wave"),
        "child_key",
        "school_id", "migration_group",
        *[pl.col(_ANALYSIS_NAMES.get(c, c)).alias(c) for c in ANALYTIC_COLUMNS],
        "teacher_attitude",
    ).sort("child_key")

    reliability = [
        scale_reliability(analysed, "depression", book.scale_items("depression")),
        scale_reliability(analysed, "teacher_items", book.scale_items("teacher_attitude")),
    ]
    measures_out = measures.with_columns(
        pl.lit(wave).alias("wave"),
        pl.col("siblings_3").alias("siblings"),
        pl.col("mother_edu_3").alias("mother_edu"),
        pl.col("father_edu_3").alias("father_edu"),
    ).select(
        "wave", "qid", "school_id", "age", "age_missing_reason", "depression", "migration_group",
        "migration_missing_reason", "mother_counted_away", "father_counted_away", "deceased_parent",
        "girl", "korean", "siblings", "mother_edu", "father_edu", "teacher_attitude", "blank_items",
        "status", "primary_reason",
    )
    return SampleResult(
        measures=schema_for("analysis.measures").validate(measures_out),
        factor=factor,
        exclusions=schema_for("analysis.exclusions").validate(exclusions),
        flow=schema_for("analysis.sample_flow").validate(flow),
        flow_reasons=schema_for("analysis.sample_flow_reasons").validate(flow_reasons),
        status=schema_for("analysis.questionnaire_status").validate(status.drop("reasons")),
        analytic_sample=schema_for("analysis.analytic_sample").validate(analytic),
        reliability=reliability,
    )
