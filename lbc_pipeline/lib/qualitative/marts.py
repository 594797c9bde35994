"""Interview marts: the registry against the design, the code matrix, and the joint display.

- `registry_summary`: interviews by role group, role, school and migration group, with
  lengths and dates, beside `wave.yaml`'s `interviews.expected` counts; `check_registry`
  is the ERROR rule (every expected count met) that blocks the joint display.
- `code_frequencies` / `code_cooccurrence`: the code matrix by role group and by the child's
  migration group; two codes co-occur when one interview holds a segment of each.
- `triangulate`: per hypothesis, the survey's verdict (`marts.hypotheses`) beside the
  interview evidence, and an agreement label by this rule:

  1. Count, for the hypothesis's codes, the informants (interviews) with at least one
     segment of each stance. `n_informants` counts those with a supports, qualifies or
     contradicts segment; below `MIN_INFORMANTS` the interviews are **silent**.
  2. The dominant stance is the one held by the most informants; ties go to qualifies,
     then contradicts, then supports (the more cautious reading).
  3. qualifies dominant -> **complementary** (the interviews agree on the direction and add
     a different mechanism or a limit); supports dominant with survey buffering, or
     contradicts dominant with no survey buffering -> **convergent** (with the null finding
     in the second case); otherwise (supports vs no buffering, contradicts vs buffering)
     -> **divergent**.

  `triangulation_examples` picks two or three redacted excerpts per hypothesis: two of the
  dominant stance and one of the next stance present, each from a different informant,
  children first, then in segment order.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl
import yaml

from lbc_pipeline.lib.marts.replication import HYPOTHESES as SURVEY_HYPOTHESES
from lbc_pipeline.lib.marts.replication import measure_label
from lbc_pipeline.lib.qualitative import contracts as qc

MIN_INFORMANTS = 3
SUBSTANTIVE = ("supports", "qualifies", "contradicts")
TIE_ORDER = ("qualifies", "contradicts", "supports")  # earlier wins a tie
VERBS = {"supports": "support", "contradicts": "contradict", "qualifies": "qualify"}
EXAMPLES_DOMINANT, EXAMPLES_OTHER = 2, 1
ROLE_ORDER = {"child": 0, "parent": 1, "grandparent": 2, "teacher": 3}
EXPECTED_KEYS = ("total", *qc.ROLE_GROUPS)
SCHOOL_KIND = {("1", "1"): "ethnic-Korean primary school", ("1", "2"): "ethnic-Korean secondary school",
               ("2", "1"): "Han primary school", ("2", "2"): "Han secondary school"}
ROLE_LABEL = {"child": "child", "head_teacher": "head teacher", "teacher": "teacher", "parent": "parent",
              "grandparent": "grandparent"}


def expected_interviews(wave_folder: Path) -> dict[str, int]:
    """`interviews.expected` of the wave's wave.yaml ({} when absent). Keys: total, child,
    teacher, parent, grandparent. (config.read_manifest ignores this block.)"""
    path = Path(wave_folder) / "wave.yaml"
    if not path.exists():
        return {}
    doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    expected = ((doc.get("interviews") or {}).get("expected")) or {}
    unknown = set(expected) - set(EXPECTED_KEYS)
    if unknown:
        raise ValueError(f"{path}: unknown interviews.expected keys {sorted(unknown)} (known: {', '.join(EXPECTED_KEYS)})")
    return {str(k): int(v) for k, v in expected.items()}


# --------------------------------------------------------------------------- registry
def registry_summary(interviews: pl.DataFrame, expected: dict[str, int], wave: str) -> pl.DataFrame:
    """`marts.interview_registry`: one row per dimension x group (every expected group
    appears, with 0 interviews if none passed)."""
    frame = interviews.with_columns(pl.lit("all").alias("total"))
    parts = []
    for dimension, column in (("total", "total"), ("role_group", "role_group"), ("role", "role"),
                              ("school", "school_id"), ("migration_group", "child_migration_group")):
        data = frame.filter(pl.col(column).is_not_null())
        summary = data.group_by(column).agg(
            pl.len().cast(pl.Int64).alias("n_interviews"),
            pl.col("duration_min").min().alias("duration_min_min"),
            pl.col("duration_min").median().cast(pl.Float64).alias("duration_min_median"),
            pl.col("duration_min").max().alias("duration_min_max"),
            pl.col("interview_date").min().alias("first_date"),
            pl.col("interview_date").max().alias("last_date"),
        ).rename({column: "grp"})
        if dimension in ("total", "role_group"):
            wanted = ["all"] if dimension == "total" else list(qc.ROLE_GROUPS)
            missing = [g for g in wanted if g not in summary["grp"].to_list() and _expected(expected, dimension, g) is not None]
            if missing:
                summary = pl.concat([summary, pl.DataFrame({"grp": missing, "n_interviews": [0] * len(missing)},
                                                           schema={"grp": pl.String, "n_interviews": pl.Int64})],
                                    how="diagonal_relaxed")
        parts.append(summary.with_columns(pl.lit(dimension).alias("dimension")))
    out = pl.concat(parts, how="diagonal_relaxed")
    out = out.with_columns(
        pl.struct("dimension", "grp").map_elements(lambda s: _expected(expected, s["dimension"], s["grp"]),
                                                   return_dtype=pl.Int64).alias("expected"))
    out = out.with_columns(
        pl.when(pl.col("expected").is_null()).then(None).otherwise(pl.col("n_interviews") == pl.col("expected"))
        .alias("matches_expected"), pl.lit(wave).alias("wave"))
    order = {"total": 0, "role_group": 1, "role": 2, "school": 3, "migration_group": 4}
    out = out.with_columns(pl.col("dimension").replace_strict(order, return_dtype=pl.Int64).alias("_o")).sort("_o", "grp").drop("_o")
    return qc.validated("marts.interview_registry", out.select(list(qc.REGISTRY.columns)))


def _expected(expected: dict[str, int], dimension: str, grp: str) -> int | None:
    if dimension == "total":
        return expected.get("total")
    if dimension == "role_group":
        return expected.get(grp)
    return None


@dataclass(frozen=True)
class RegistryOutcome:
    passed: bool
    description: str
    metadata: dict


def check_registry(registry: pl.DataFrame, expected: dict[str, int], delivered: bool) -> RegistryOutcome:
    """ERROR rule: every count wave.yaml expects is met by the interviews that passed the rules."""
    if not expected:
        text = ("no interviews delivered and none expected" if not delivered
                else "wave.yaml states no interviews.expected: the registry was not checked against the design")
        return RegistryOutcome(True, text, {"checked": False})
    rows = registry.filter(pl.col("expected").is_not_null())
    found = {f"{r['dimension']}:{r['grp']}": (r["n_interviews"], r["expected"]) for r in rows.iter_rows(named=True)}
    missing_keys = [k for k in expected if not any(key.endswith(f":{'all' if k == 'total' else k}") for key in found)]
    off = {k: v for k, v in found.items() if v[0] != v[1]}
    for key in missing_keys:
        off[key] = (0, expected[key])
    counts = ", ".join(f"{k.split(':')[1]} {n}/{e}" for k, (n, e) in sorted(found.items()))
    if off:
        detail = "; ".join(f"{k.split(':')[-1]}: {n} interviews, {e} expected" for k, (n, e) in sorted(off.items()))
        return RegistryOutcome(False, f"the interview registry does not match the design ({detail})",
                               {"counts": counts})
    return RegistryOutcome(True, f"the registry matches wave.yaml ({counts})", {"counts": counts})


# --------------------------------------------------------------------------- code matrix
def _interview_groups(interviews: pl.DataFrame) -> pl.DataFrame:
    """One row per interview x (dimension, grp) it belongs to."""
    base = interviews.select("interview_id", "role_group", "child_migration_group")
    return pl.concat([
        base.select("interview_id", pl.lit("all").alias("dimension"), pl.lit("all").alias("grp")),
        base.select("interview_id", pl.lit("role_group").alias("dimension"), pl.col("role_group").alias("grp")),
        base.filter(pl.col("child_migration_group").is_not_null()).select(
            "interview_id", pl.lit("migration_group").alias("dimension"), pl.col("child_migration_group").alias("grp")),
    ])


def code_frequencies(interviews: pl.DataFrame, segments: pl.DataFrame, codes: pl.DataFrame, wave: str) -> pl.DataFrame:
    """`marts.interview_code_frequencies`: every code x dimension x group, zeros included."""
    groups = _interview_groups(interviews)
    sizes = groups.group_by("dimension", "grp").agg(pl.len().cast(pl.Int64).alias("n_interviews_in_group"))
    coded = segments.select("interview_id", "code").join(groups, on="interview_id")
    counts = coded.group_by("code", "dimension", "grp").agg(
        pl.len().cast(pl.Int64).alias("n_segments"), pl.col("interview_id").n_unique().cast(pl.Int64).alias("n_informants"))
    matrix = codes.select("code", "label", "hypothesis", "stance").join(sizes, how="cross")
    out = matrix.join(counts, on=["code", "dimension", "grp"], how="left").with_columns(
        pl.col("n_segments").fill_null(0), pl.col("n_informants").fill_null(0), pl.lit(wave).alias("wave"))
    out = out.with_columns((pl.col("n_informants") / pl.col("n_interviews_in_group")).alias("share_informants"))
    out = out.sort("dimension", "grp", "code")
    return qc.validated("marts.interview_code_frequencies", out.select(list(qc.FREQUENCIES.columns)))


def code_cooccurrence(interviews: pl.DataFrame, segments: pl.DataFrame, wave: str) -> pl.DataFrame:
    """`marts.interview_code_cooccurrence`: pairs of codes in the same interview."""
    groups = _interview_groups(interviews)
    coded = segments.select("interview_id", "code").unique().join(groups, on="interview_id")
    per_code = coded.group_by("code", "dimension", "grp").agg(pl.len().cast(pl.Int64).alias("n"))
    pairs = coded.join(coded, on=["interview_id", "dimension", "grp"], suffix="_b").filter(pl.col("code") < pl.col("code_b"))
    out = pairs.group_by("code", "code_b", "dimension", "grp").agg(pl.len().cast(pl.Int64).alias("n_interviews"))
    out = (out.rename({"code": "code_a"})
           .join(per_code.rename({"code": "code_a", "n": "n_interviews_a"}), on=["code_a", "dimension", "grp"])
           .join(per_code.rename({"code": "code_b", "n": "n_interviews_b"}), on=["code_b", "dimension", "grp"]))
    out = out.with_columns(
        (pl.col("n_interviews") / (pl.col("n_interviews_a") + pl.col("n_interviews_b") - pl.col("n_interviews"))).alias("jaccard"),
        pl.lit(wave).alias("wave"),
    ).sort("dimension", "grp", "code_a", "code_b")
    return qc.validated("marts.interview_code_cooccurrence", out.select(list(qc.COOCCURRENCE.columns)))


# --------------------------------------------------------------------------- triangulation
def agreement(counts: dict[str, int], survey_supported: bool) -> tuple[str | None, str, str]:
    """(dominant stance, label, note) from informant counts per stance (the module's rule)."""
    n = sum(counts.get(s, 0) for s in SUBSTANTIVE)  # an upper bound of distinct informants
    distinct = counts.get("_distinct", n)
    if distinct < MIN_INFORMANTS:
        return None, "silent", f"{distinct} informant(s) speak to it, fewer than {MIN_INFORMANTS}"
    dominant = max(SUBSTANTIVE, key=lambda s: (counts.get(s, 0), -TIE_ORDER.index(s)))
    tally = ", ".join(f"{s} {counts.get(s, 0)}" for s in SUBSTANTIVE)
    finding = "buffering" if survey_supported else "no buffering"
    if dominant == "qualifies":
        return dominant, "complementary", (f"most informants qualify ({tally}): same direction as the survey's "
                                           f"{finding}, a different mechanism or a limit")
    if (dominant == "supports") == survey_supported:
        null = "" if survey_supported else " with the null finding"
        return dominant, "convergent", (f"most informants {VERBS[dominant]} the buffering ({tally}) and the survey "
                                        f"finds {finding}: convergent{null}")
    return dominant, "divergent", f"most informants {VERBS[dominant]} the buffering ({tally}) but the survey finds {finding}"


def triangulate(hypotheses: pl.DataFrame, segments: pl.DataFrame, codes: pl.DataFrame, wave: str) -> pl.DataFrame:
    """`marts.triangulation`: one row per hypothesis (H1-H3 of marts.hypotheses)."""
    coded = segments.join(codes.select("code", "hypothesis", "stance"), on="code")
    rows = []
    for hypothesis, topic, _ in SURVEY_HYPOTHESES:
        verdict = hypotheses.filter(pl.col("hypothesis") == hypothesis)
        if verdict.is_empty():
            raise ValueError(f"marts.hypotheses has no verdict on {hypothesis} for wave {wave!r}")
        supported = bool(verdict["supported"][0])
        buffered = [measure_label(m) for m, b in verdict.select("measure", "buffering").iter_rows() if b]
        evidence = f"buffering for {', '.join(buffered)}" if buffered else "no measure shows buffering"
        mine = coded.filter(pl.col("hypothesis") == hypothesis)
        counts, segs = {}, {}
        for stance in qc.STANCES:
            part = mine.filter(pl.col("stance") == stance)
            segs[stance] = part.height
            counts[stance] = part["interview_id"].n_unique()
        substantive = mine.filter(pl.col("stance").is_in(SUBSTANTIVE))
        counts["_distinct"] = substantive["interview_id"].n_unique()
        by_role = substantive.unique("interview_id").group_by("role_group").len()
        roles = ", ".join(f"{g} {n}" for g, n in sorted(by_role.iter_rows(), key=lambda r: ROLE_ORDER.get(r[0], 9)))
        dominant, label, note = agreement(counts, supported)
        rows.append({
            "wave": wave, "hypothesis": hypothesis, "topic": topic, "survey_supported": supported,
            "survey_finding": "buffering" if supported else "no buffering", "survey_evidence": evidence,
            **{f"n_segments_{s}": segs[s] for s in qc.STANCES},
            **{f"n_informants_{s}": counts[s] for s in qc.STANCES},
            "n_informants": counts["_distinct"], "informants_by_role": roles or "none",
            "dominant_stance": dominant, "agreement": label, "agreement_note": note,
        })
    schema = {n: c.dtype.type for n, c in qc.TRIANGULATION.columns.items()}
    return qc.validated("marts.triangulation", pl.DataFrame(rows, schema=schema))


def citation(row: dict, schools: dict[str, tuple[str, str]]) -> str:
    """How an excerpt is cited: role, school and, for children and their families, migration."""
    kind = SCHOOL_KIND.get(schools.get(row["school_id"], ("", "")), "school")
    text = f"{ROLE_LABEL.get(row['role'], row['role'])}, {kind} ({row['school_id']})"
    group, destination = row.get("child_migration_group"), row.get("destination")
    if group:
        who = {"mother": "mother", "father": "father", "both": "both parents"}.get(group)
        where = f"in {destination}" if destination else "away"
        text += f", {who} working {where}" if who else ", parents at home"
    return text


def triangulation_examples(triangulation: pl.DataFrame, segments: pl.DataFrame, codes: pl.DataFrame,
                           interviews: pl.DataFrame, distribution: pl.DataFrame, wave: str) -> pl.DataFrame:
    """`marts.triangulation_examples`: two or three redacted excerpts per hypothesis."""
    schools = {r["school_id"]: (str(r["school_type"]), str(r["school_level"])) for r in distribution.iter_rows(named=True)}
    coded = (segments.join(codes.select("code", "hypothesis", "stance"), on="code")
             .join(interviews.select("interview_id", "destination"), on="interview_id", how="left"))
    rows = []
    for t in triangulation.iter_rows(named=True):
        if t["dominant_stance"] is None:
            continue
        others = sorted((s for s in SUBSTANTIVE if s != t["dominant_stance"] and t[f"n_informants_{s}"] > 0),
                        key=lambda s: -t[f"n_informants_{s}"])
        plan = [(t["dominant_stance"], EXAMPLES_DOMINANT)] + ([(others[0], EXAMPLES_OTHER)] if others else [])
        used: set[str] = set()
        texts: set[str] = set()
        for stance, k in plan:
            pool = (coded.filter((pl.col("hypothesis") == t["hypothesis"]) & (pl.col("stance") == stance))
                    .with_columns(pl.col("role_group").replace_strict(ROLE_ORDER, default=9, return_dtype=pl.Int64).alias("_r"))
                    .sort("_r", "segment_id"))
            taken = 0
            for r in pool.iter_rows(named=True):
                if taken == k:
                    break
                if r["informant_code"] in used or r["text"] in texts:
                    continue
                used.add(r["informant_code"])
                texts.add(r["text"])
                taken += 1
                rows.append({"wave": wave, "hypothesis": t["hypothesis"], "rank": len([x for x in rows if x["hypothesis"] == t["hypothesis"]]) + 1,
                             "stance": stance, "code": r["code"], "segment_id": r["segment_id"],
                             "informant_code": r["informant_code"], "citation": citation(r, schools), "excerpt": r["text"]})
    schema = {n: c.dtype.type for n, c in qc.EXAMPLES.columns.items()}
    return qc.validated("marts.triangulation_examples", pl.DataFrame(rows, schema=schema))
