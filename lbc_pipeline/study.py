"""The study definition, read once from study.yaml: models, terms, labels, SE types, the
star rule, Table 1's layout, the hypotheses and the replication tolerances.

Every model fit, publication table, report, mart and check asks `load_study()`, so that
adding a model (one entry under `models` in study.yaml) reaches the fits, the tables, the
report and the documentation with no other edit. Names, codes and value labels of
variables stay the codebook's; this module adds what the paper does with them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml

from lbc_pipeline.codebook import load_codebook

STUDY_PATH = Path(__file__).with_name("study.yaml")


def study_path() -> Path:
    """study.yaml, or the variant `LBC_STUDY_FILE` names (to try another set of models)."""
    return Path(os.environ.get("LBC_STUDY_FILE", STUDY_PATH))


@dataclass(frozen=True)
class ModelSpec:
    """One model of the paper under one specification.

    `terms` are the design-matrix columns in the paper's printing order (migration dummies,
    controls, moderator, interactions, `const`); an interaction is named
    `mother_away:belong`, migration dummy first.
    """

    table_no: int
    model_no: int
    moderator: str | None
    interactions: bool
    centre_moderator: bool
    terms: tuple[str, ...]
    specification: str

    @property
    def label(self) -> str:
        """The paper's name of the model, e.g. 'Table 4 Model 1'."""
        return f"Table {self.table_no} Model {self.model_no}"

    @property
    def stem(self) -> str:
        """File stem of the model's artifact, e.g. 'as_published_table4_model1'."""
        return f"{self.specification}_table{self.table_no}_model{self.model_no}"


@dataclass(frozen=True)
class ModelEntry:
    """One model as study.yaml lists it, before a specification codes its moderator."""

    table_no: int
    model_no: int
    controls: bool
    moderator: str | None
    interactions: bool
    raw_in: tuple[str, ...]


@dataclass(frozen=True)
class Table1Row:
    """One block of Table 1: a continuous variable (no levels) or a categorical one."""

    variable: str
    title: str
    levels: tuple[tuple[int, str], ...]


@dataclass(frozen=True)
class Hypothesis:
    id: str
    topic: str
    measures: tuple[str, ...]


@dataclass(frozen=True)
class Tolerances:
    estimate_in_se: float
    se_ratio: float
    r_squared: float
    r_squared_overrides: dict[tuple[int, int], float]

    def r_squared_for(self, table_no: int, model_no: int) -> float:
        return self.r_squared_overrides.get((table_no, model_no), self.r_squared)


@dataclass(frozen=True)
class Study:
    """The whole study definition (see study.yaml for the meaning of each part)."""

    outcome: str
    cluster: str
    groups: tuple[str, ...]
    group_labels: dict[str, str]
    group_terms: dict[str, str]
    all_groups: str
    all_groups_label: str
    controls: tuple[str, ...]
    moderators: tuple[str, ...]
    constant: str
    term_labels: dict[str, str]
    specifications: tuple[str, ...]
    specification_notes: dict[str, str]
    reference_specification: str
    se_types: tuple[str, ...]
    se_notes: dict[str, str | None]
    se_table_notes: dict[str, str]
    reference_se_type: str
    star_rule: tuple[tuple[float, str], ...]
    confidence_level: float
    table_titles: dict[int, str]
    controls_shown_in_tables: tuple[int, ...]
    models: tuple[ModelEntry, ...]
    table1: tuple[Table1Row, ...]
    hypothesis_table: int
    hypothesis_term: str
    hypothesis_alpha: float
    hypotheses: tuple[Hypothesis, ...]
    tolerances: Tolerances

    @property
    def migration_terms(self) -> tuple[str, ...]:
        """The migration dummies in the groups' order (the reference group has none)."""
        return tuple(self.group_terms[g] for g in self.groups if g in self.group_terms)

    @property
    def regression_tables(self) -> tuple[int, ...]:
        """The tables that hold models, in order."""
        return tuple(sorted({m.table_no for m in self.models}))

    def terms(self, entry: ModelEntry) -> tuple[str, ...]:
        """A model's terms in the paper's printing order."""
        terms = list(self.migration_terms)
        if entry.controls:
            terms += self.controls
        if entry.moderator is not None:
            terms.append(entry.moderator)
            if entry.interactions:
                terms += [interaction_term(m, entry.moderator) for m in self.migration_terms]
        terms.append(self.constant)
        return tuple(terms)

    def model_specs(self, specification: str) -> list[ModelSpec]:
        """Every model of the study under one specification, in study.yaml's order."""
        if specification not in self.specifications:
            raise ValueError(f"unknown specification {specification!r}; expected one of {self.specifications}")
        return [
            ModelSpec(e.table_no, e.model_no, e.moderator, e.interactions,
                      e.moderator is not None and specification not in e.raw_in,
                      self.terms(e), specification)
            for e in self.models
        ]

    def term_label(self, term: str) -> str:
        """The printed label of a term; an interaction is "Mother away × School belonging"."""
        if ":" in term:
            return " × ".join(self.term_label(part) for part in term.split(":"))
        if term in self.term_labels:
            return self.term_labels[term]
        group = next((g for g, t in self.group_terms.items() if t == term), None)
        return self.group_labels[group] if group else term

    def stars(self, p_value: float) -> str:
        """The paper's stars for a p-value."""
        for cut, stars in self.star_rule:
            if p_value < cut:
                return stars
        return ""

    def star_legend(self, separator: str = " ") -> str:
        """'* p<0.05 ** p<0.01 *** p<0.001' style legend, loosest first."""
        return ", ".join(f"{stars}{separator}p<{cut:g}" for cut, stars in self.star_rule)


def interaction_term(migration_term: str, moderator: str) -> str:
    """Name the interaction of a migration dummy with a moderator."""
    return f"{migration_term}:{moderator}"


def _reference(entries: list[dict], what: str) -> str:
    found = [e["name"] for e in entries if e.get("reference")]
    if len(found) != 1:
        raise ValueError(f"study.yaml: exactly one {what} must be the reference, found {found}")
    return found[0]


def _label(text: str) -> str:
    return text[:1].upper() + text[1:]


def load_study() -> Study:
    """The study definition of this process (study.yaml or `LBC_STUDY_FILE`)."""
    return read_study(study_path())


@cache
def read_study(path: Path) -> Study:
    """Read and check a study definition; cached, so every caller shares one object."""
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    book = load_codebook()
    groups = book.migration_groups
    group_terms = {g: t for g, t in raw["migration_terms"].items() if t}
    models = tuple(
        ModelEntry(int(m["table"]), int(m["model"]), bool(m.get("controls", False)), m.get("moderator"),
                   bool(m.get("interactions", False)), tuple(m.get("raw_in", ())))
        for m in raw["models"]
    )
    table1 = []
    for row in raw["table1"]:
        labels = {int(k): v for k, v in (row.get("labels") or {}).items()}
        values = book.value_labels(row["variable"]) if row.get("levels") and row["variable"] != "grade" else {}
        levels = tuple(
            (int(code), f"{labels.get(int(code)) or (_label(values[int(code)][0]) if values else str(code))} (%)")
            for code in row.get("levels") or ()
        )
        table1.append(Table1Row(row["variable"], row["title"], levels))
    tol = raw["replication_tolerances"]
    rule = raw["hypothesis_rule"]
    study = Study(
        outcome=raw["outcome"],
        cluster=raw["cluster"],
        groups=groups,
        group_labels={g: book.migration_group_labels[g][0] for g in groups},
        group_terms=group_terms,
        all_groups=raw["all_groups"]["group"],
        all_groups_label=raw["all_groups"]["label"],
        controls=tuple(raw["controls"]),
        moderators=tuple(raw["moderators"]),
        constant=raw["constant"],
        term_labels=dict(raw["term_labels"]),
        specifications=tuple(s["name"] for s in raw["specifications"]),
        specification_notes={s["name"]: s["description"] for s in raw["specifications"]},
        reference_specification=_reference(raw["specifications"], "specification"),
        se_types=tuple(s["name"] for s in raw["se_types"]),
        se_notes={s["name"]: s["note"] for s in raw["se_types"]},
        se_table_notes={s["name"]: s["table_note"] for s in raw["se_types"]},
        reference_se_type=_reference(raw["se_types"], "SE type"),
        star_rule=tuple((float(cut), stars) for cut, stars in raw["star_rule"]),
        confidence_level=float(raw["confidence_level"]),
        table_titles={int(k): v for k, v in raw["tables"].items()},
        controls_shown_in_tables=tuple(int(t) for t in raw["controls_shown_in_tables"]),
        models=models,
        table1=tuple(table1),
        hypothesis_table=int(rule["table"]),
        hypothesis_term=rule["migration_term"],
        hypothesis_alpha=float(rule["alpha"]),
        hypotheses=tuple(Hypothesis(h["id"], h["topic"], tuple(h["measures"])) for h in raw["hypotheses"]),
        tolerances=Tolerances(
            float(tol["estimate_in_se"]), float(tol["se_ratio"]), float(tol["r_squared"]),
            {(int(o["table"]), int(o["model"])): float(o["r_squared"]) for o in tol.get("r_squared_overrides", ())},
        ),
    )
    _check(study)
    return study


def _check(study: Study) -> None:
    """Fail loudly on a study definition that contradicts itself or the codebook."""
    unknown = set(study.group_terms) - set(study.groups)
    if unknown:
        raise ValueError(f"study.yaml: migration_terms names groups the codebook lacks: {sorted(unknown)}")
    seen = set()
    for m in study.models:
        if (m.table_no, m.model_no) in seen:
            raise ValueError(f"study.yaml: Table {m.table_no} Model {m.model_no} is listed twice")
        seen.add((m.table_no, m.model_no))
        if m.moderator is not None and m.moderator not in study.moderators:
            raise ValueError(f"study.yaml: Table {m.table_no} Model {m.model_no}: unknown moderator {m.moderator!r}")
        if m.interactions and m.moderator is None:
            raise ValueError(f"study.yaml: Table {m.table_no} Model {m.model_no}: interactions need a moderator")
        if set(m.raw_in) - set(study.specifications):
            raise ValueError(f"study.yaml: Table {m.table_no} Model {m.model_no}: raw_in names unknown specifications")
    for h in study.hypotheses:
        missing = [x for x in h.measures if not any(
            m.table_no == study.hypothesis_table and m.moderator == x and m.interactions for m in study.models)]
        if missing:
            raise ValueError(f"study.yaml: {h.id} measures without an interaction model in Table "
                             f"{study.hypothesis_table}: {missing}")
