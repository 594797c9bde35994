"""From raw text to typed staging tables: duplicates, special codes, ranges, quarantine.

Raw values are classified before the typed contract runs (pandera cannot range-check a
column it failed to coerce): each cell is empty, a special code, unparseable, or a number;
numbers are then validated lazily against the codebook's ranges, and every failure case
becomes a quarantine row. Nothing is dropped: every value set to missing keeps its reason
in `missing_values`, every keyed row stays in the raw layer.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from lbc_pipeline.codebook import load_codebook
from lbc_pipeline.lib.raw.reading import LOCATION_COLUMNS, ROW_COLUMN, RawFileError, row_location, shown

DATE_FORMAT = "%Y-%m-%d"


@dataclass(frozen=True)
class CleanedQuestionnaires:
    """The staging tables of one wave's questionnaires."""

    questionnaires: pl.DataFrame
    missing_values: pl.DataFrame
    quarantine: pl.DataFrame
    entry_duplicates: pl.DataFrame


def _reason_col(name: str) -> str:
    return f"__reason_{name}"


def collapse_duplicates(raw: pl.DataFrame, wave: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """One row per qid, and the report of qids keyed more than once.

    Identical rows collapse to the first keyed; rows that share a qid but differ are one
    conflicting questionnaire: the first row is kept in staging, flagged `conflicting`,
    and every row stays in the raw layer for review.
    """
    # where a row sits (its row number; its sheet and row there) is no part of its content
    value_columns = [c for c in raw.columns if c != ROW_COLUMN and c not in LOCATION_COLUMNS]
    hashed = raw.with_columns(
        pl.struct(value_columns).hash(seed=0).alias("__hash")
    )
    groups = hashed.group_by("qid").agg(
        pl.len().cast(pl.Int64).alias("n_rows"),
        pl.col("__hash").n_unique().alias("n_versions"),
        pl.col(ROW_COLUMN).sort().alias("source_rows"),
    )
    status = groups.select(
        "qid",
        pl.when(pl.col("n_rows") == 1).then(pl.lit("unique"))
        .when(pl.col("n_versions") == 1).then(pl.lit("identical_collapsed"))
        .otherwise(pl.lit("conflicting")).alias("duplicate_status"),
    )
    kept = (
        raw.sort(ROW_COLUMN).unique(subset="qid", keep="first", maintain_order=True)
        .join(status, on="qid", how="left")
    )
    repeated = groups.filter(pl.col("n_rows") > 1)
    # For every conflicting qid at once: the columns (in file order) whose values differ.
    conflicting = repeated.filter(pl.col("n_versions") > 1).select("qid")
    differing_frame = (
        raw.join(conflicting, on="qid", how="semi")
        .group_by("qid")
        .agg([pl.col(c).n_unique().alias(c) for c in value_columns if c != "qid"])
        .select(
            "qid",
            pl.concat_list([
                pl.when(pl.col(c) > 1).then(pl.lit(c)).otherwise(pl.lit(None, dtype=pl.String))
                for c in value_columns if c != "qid"
            ]).list.drop_nulls().alias("differing_columns"),
        )
    ) if conflicting.height else pl.DataFrame(
        schema={"qid": pl.String, "differing_columns": pl.List(pl.String)}
    )
    report = (
        repeated.join(differing_frame, on="qid", how="left")
        .select(
            pl.lit(wave).alias("wave"),
            "qid",
            pl.when(pl.col("n_versions") > 1).then(pl.lit("conflicting"))
            .otherwise(pl.lit("identical")).alias("kind"),
            "n_rows",
            "source_rows",
            pl.col("differing_columns").fill_null(pl.lit([], dtype=pl.List(pl.String))),
        )
        .sort("qid")
    )
    return kept, report


def _reason_type() -> pl.Enum:
    """Why a cell is missing, as an enum: 4 bytes a cell instead of a string view's 16
    (31 reason columns of a million questionnaires)."""
    book = load_codebook()
    return pl.Enum([book.empty_reason, *book.special_code_reasons.values(), "unparseable", "out_of_range"])


def classify_cells(frame: pl.DataFrame) -> pl.DataFrame:
    """Parse numeric and date columns; add a `__reason_<var>` column per variable.

    A reason is `not_answered` (empty), a special-code reason (refused, dont_know,
    not_applicable) or `unparseable`; the value is null wherever a reason is set.
    Range checks come afterwards, from the contract.
    """
    book = load_codebook()
    special = book.special_code_reasons
    reasons = _reason_type()
    exprs = []
    for var in book.file_variables("questionnaires"):
        if var.personal or var.kind == "text":
            continue
        text = pl.col(var.name)
        number = text.cast(pl.Float64, strict=False)
        is_integer = number.is_not_null() & (number == number.floor()) & number.is_finite()
        integer = pl.when(is_integer).then(number).otherwise(None).cast(pl.Int64)
        special_reason = integer.replace_strict(special, default=None, return_dtype=pl.String)
        if var.kind == "date":
            parsed = text.str.to_date(DATE_FORMAT, strict=False)
            unparseable = parsed.is_null() & special_reason.is_null()
        else:
            parsed = integer
            unparseable = integer.is_null()
        reason = (
            pl.when(text.is_null()).then(pl.lit(book.empty_reason))
            .when(special_reason.is_not_null()).then(special_reason)
            .when(unparseable).then(pl.lit("unparseable"))
            .otherwise(None)
        )
        exprs.append(reason.cast(reasons).alias(_reason_col(var.name)))
        exprs.append(
            pl.when(text.is_null() | special_reason.is_not_null()).then(None)
            .otherwise(parsed).alias(var.name)
        )
    return frame.with_columns(exprs)


def find_out_of_range(frame: pl.DataFrame) -> pl.DataFrame:
    """Every numeric answer outside its codebook range: pandera's lazy failure cases.

    Returns (row index, variable, check) rows; an empty frame when all values conform.
    """
    import pandera.errors

    from lbc_pipeline.lib.contracts import answer_schema

    schema = answer_schema()
    numeric = frame.select(list(schema.columns))
    empty = pl.DataFrame(schema={"__index": pl.Int64, "variable": pl.String, "check": pl.String})
    try:
        schema.validate(numeric, lazy=True)
    except pandera.errors.SchemaErrors as exc:
        cases = exc.failure_cases
        unexpected = cases.filter(pl.col("index").is_null())
        if unexpected.height:
            raise RuntimeError(f"answer contract failed at schema level: {unexpected}") from exc
        return cases.select(
            pl.col("index").cast(pl.Int64).alias("__index"),
            pl.col("column").alias("variable"),
            pl.col("check").cast(pl.String),
        )
    return empty


def clean_questionnaires(raw: pl.DataFrame, wave: str, file_name: str) -> CleanedQuestionnaires:
    """Staging tables of one wave from its raw questionnaires (text, `_row`, codebook names)."""
    from lbc_pipeline.lib.contracts import schema_for

    book = load_codebook()
    missing_qid = raw.filter(pl.col("qid").is_null())
    if missing_qid.height:
        raise RawFileError(
            file_name, "qid is empty: every keyed row needs its questionnaire number "
            f"({missing_qid.height} row(s) without one)",
            column="qid", **row_location(missing_qid.row(0, named=True)),
        )
    kept, duplicates = collapse_duplicates(raw, wave)
    typed = classify_cells(kept).with_row_index("__index").with_columns(pl.col("__index").cast(pl.Int64))

    failures = find_out_of_range(typed)
    if failures.height:
        flagged = failures.with_columns(pl.lit("out_of_range").alias("__rule"))
        for variable in flagged["variable"].unique().to_list():
            bad = flagged.filter(pl.col("variable") == variable)["__index"]
            hit = pl.col("__index").is_in(bad.implode())
            typed = typed.with_columns(
                pl.when(hit).then(None).otherwise(pl.col(variable)).alias(variable),
                pl.when(hit).then(pl.lit("out_of_range", dtype=_reason_type()))
                .otherwise(pl.col(_reason_col(variable))).alias(_reason_col(variable)),
            )
    reason_columns = [c for c in typed.columns if c.startswith("__reason_")]
    variables = [c.removeprefix("__reason_") for c in reason_columns]

    # One row per missing cell, built column by column: only the missing cells are ever
    # materialised (not every cell of the wave in long form). `typed` keeps `kept`'s rows in
    # order, so each raw value sits in the same row of `kept`.
    missing_values = pl.concat([
        typed.select("qid", ROW_COLUMN, pl.col(_reason_col(v)).cast(pl.String).alias("reason"))
        .with_columns(kept[v].alias("raw_value"))
        .filter(pl.col("reason").is_not_null())
        .select(pl.lit(wave).alias("wave"), "qid", pl.lit(v).alias("variable"), "raw_value", "reason", ROW_COLUMN)
        for v in variables
    ]).sort("qid", "variable")
    checks = failures.join(
        typed.select("__index", "qid"), on="__index", how="left"
    ).select("qid", "variable", "check")
    quarantine = (
        missing_values.filter(pl.col("reason").is_in(["out_of_range", "unparseable"]))
        .join(checks, on=["qid", "variable"], how="left")
        .select(
            "wave", "qid", pl.col(ROW_COLUMN).alias("source_row"), "variable", "raw_value",
            pl.col("reason").alias("rule"),
            pl.col("check").fill_null(pl.lit("parse as integer / date YYYY-MM-DD")),
        )
    )
    missing_values = missing_values.drop(ROW_COLUMN)

    keep = [v.name for v in book.file_variables("questionnaires") if not v.personal]
    questionnaires = typed.select(
        pl.lit(wave).alias("wave"), *keep,
        pl.col(ROW_COLUMN).alias("source_row"), "duplicate_status",
    ).sort("qid")
    return CleanedQuestionnaires(
        questionnaires=schema_for("staging.questionnaires").validate(questionnaires),
        missing_values=missing_values,
        quarantine=quarantine,
        entry_duplicates=duplicates,
    )


def clean_distribution(raw: pl.DataFrame, wave: str, file_name: str) -> pl.DataFrame:
    """The typed distribution table; any unreadable value is an error naming its row."""
    from lbc_pipeline.lib.contracts import schema_for

    book = load_codebook()
    out = {"wave": [wave] * raw.height}
    for var in book.file_variables("distribution"):
        values = raw[var.name].to_list()
        if var.kind == "text":
            out[var.name] = values
            continue
        parsed = []
        allowed = var.valid_values  # built once per variable (a range of 100,001 counts)
        for index, value in enumerate(values):
            number = _to_int(value)
            if number is None or (allowed is not None and number not in allowed):
                raise RawFileError(
                    file_name, f"{shown(value)} is not a valid {var.name} ({var.en})", column=var.name,
                    **row_location(raw.row(index, named=True)),
                )
            parsed.append(number)
        out[var.name] = parsed
    frame = pl.DataFrame(out, schema={"wave": pl.String, **{
        v.name: (pl.String if v.kind == "text" else pl.Int64) for v in book.file_variables("distribution")
    }})
    located = [c for c in (ROW_COLUMN, *LOCATION_COLUMNS) if c in raw.columns]
    numbered = frame.with_columns(raw.select(located).rename({ROW_COLUMN: "__row"}))
    missing_id = numbered.filter(pl.col("school_id").is_null())
    if missing_id.height:
        raise RawFileError(file_name, "school_id is empty", column="school_id",
                           **_place(missing_id.row(0, named=True)))
    doubled = numbered.filter(pl.col("school_id").is_duplicated())
    if doubled.height:
        school = doubled["school_id"][0]
        places = [_place(r) for r in doubled.filter(pl.col("school_id") == school).iter_rows(named=True)]
        rows = [(f"sheet {p['sheet']!r} row {p['row']}" if "sheet" in p else str(p["row"])) for p in places]
        raise RawFileError(file_name, f"school_id {shown(school)} is listed more than once (rows {', '.join(rows)})",
                           column="school_id", **places[1])
    return schema_for("staging.distribution").validate(frame)


def _place(row: dict) -> dict:
    """`row_location` of a row whose row number is under `__row`."""
    return row_location({**row, ROW_COLUMN: row["__row"]})


def _to_int(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return int(number) if number.is_integer() else None
