"""The codebook: names, labels, codes, ranges and rule orders, read from codebook.yaml.

Everything that needs to know what a variable is (the pandera schemas, the cleaning rules,
the derived measures, the synthetic generator, the column documentation in DuckDB) asks this
module, so that a code or a label is written down exactly once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import yaml

CODEBOOK_PATH = Path(__file__).with_name("codebook.yaml")


@dataclass(frozen=True)
class Variable:
    """One variable of a raw file, as the instrument defines it."""

    name: str
    file: str
    kind: str  # text | date | integer | code
    en: str
    zh: str
    group: str | None = None
    codes: dict[int, tuple[str, str]] = field(default_factory=dict)
    range: tuple[int, int] | None = None
    personal: bool = False

    @property
    def valid_values(self) -> frozenset[int] | None:
        """The codes (or the closed integer range) a substantive answer may take."""
        if self.kind == "code":
            return frozenset(self.codes)
        if self.kind == "integer" and self.range is not None:
            return frozenset(range(self.range[0], self.range[1] + 1))
        return None

    @property
    def is_numeric(self) -> bool:
        return self.kind in ("code", "integer")

    def label(self, code: int, lang: str = "en") -> str:
        en, zh = self.codes[code]
        return en if lang == "en" else zh


@dataclass(frozen=True)
class SpecialCode:
    code: int
    reason: str
    en: str
    zh: str


@dataclass(frozen=True)
class Codebook:
    """The whole codebook, loaded once."""

    variables: tuple[Variable, ...]
    special_codes: tuple[SpecialCode, ...]
    empty_reason: str
    blank_reasons: tuple[str, ...]
    largely_blank_threshold: int
    substantive_groups: tuple[str, ...]
    invalid_reasons: tuple[tuple[str, str], ...]
    exclusion_order: tuple[str, ...]
    population_age: tuple[int, int]
    population_grades: tuple[int, ...]
    migration_groups: tuple[str, ...]
    migration_group_labels: dict[str, tuple[str, str]]
    analysis_codings: dict[str, tuple[str, dict[int, tuple[str, str]]]]
    education_map: dict[int, int]
    siblings_cap: int
    korean_code: int
    girl_code: int
    birth_day: int
    away_min_duration_code: int
    scales: dict[str, dict]
    value_rules: dict[str, str]
    raw: dict

    def file_variables(self, file: str) -> tuple[Variable, ...]:
        """Variables of one raw file (`questionnaires` or `distribution`), in codebook order."""
        return tuple(v for v in self.variables if v.file == file)

    def variable(self, name: str, file: str = "questionnaires") -> Variable:
        for v in self.variables:
            if v.name == name and v.file == file:
                return v
        raise KeyError(f"{name!r} is not a variable of {file!r} in the codebook")

    @property
    def substantive_items(self) -> tuple[str, ...]:
        """The 31 substantive items that the largely-blank rule counts."""
        return tuple(
            v.name
            for v in self.file_variables("questionnaires")
            if v.group in self.substantive_groups
        )

    @property
    def personal_columns(self) -> tuple[str, ...]:
        return tuple(v.name for v in self.variables if v.personal)

    @property
    def special_code_reasons(self) -> dict[int, str]:
        return {s.code: s.reason for s in self.special_codes}

    @property
    def exclusion_reasons(self) -> tuple[str, ...]:
        """Exclusion reasons in priority order: `deceased_parent`, then `missing_<variable>`."""
        return tuple(
            r if r == "deceased_parent" else f"missing_{r}" for r in self.exclusion_order
        )

    @property
    def invalid_reason_names(self) -> tuple[str, ...]:
        return tuple(r for r, _ in self.invalid_reasons)

    def scale_items(self, scale: str) -> tuple[str, ...]:
        return tuple(self.scales[scale]["items"])

    def value_labels(self, name: str) -> dict[int, tuple[str, str]]:
        """Codes and (English, Chinese) labels of an analysis variable: its analysis coding
        when it recodes a raw answer, else the questionnaire variable's own codes."""
        if name in self.analysis_codings:
            return self.analysis_codings[name][1]
        return self.variable(name).codes


def _variable(entry: dict) -> Variable:
    codes = {int(k): (v[0], v[1]) for k, v in (entry.get("codes") or {}).items()}
    rng = tuple(entry["range"]) if "range" in entry else None
    return Variable(
        name=entry["name"],
        file=entry["file"],
        kind=entry["kind"],
        en=entry["en"],
        zh=entry["zh"],
        group=entry.get("group"),
        codes=codes,
        range=rng,
        personal=bool(entry.get("personal", False)),
    )


@cache
def load_codebook(path: Path = CODEBOOK_PATH) -> Codebook:
    """Read and check codebook.yaml; cached, so every caller shares one object."""
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    recodes = raw["recodes"]
    book = Codebook(
        variables=tuple(_variable(e) for e in raw["variables"]),
        special_codes=tuple(
            SpecialCode(int(code), *values) for code, values in raw["special_codes"].items()
        ),
        empty_reason=raw["empty_reason"][0],
        blank_reasons=tuple(raw["blank_reasons"]),
        largely_blank_threshold=int(raw["largely_blank_threshold"]),
        substantive_groups=tuple(raw["substantive_groups"]),
        invalid_reasons=tuple((r, d) for r, d in raw["invalid_reasons"]),
        exclusion_order=tuple(raw["exclusion_order"]),
        population_age=tuple(raw["population"]["age"]),
        population_grades=tuple(raw["population"]["grades"]),
        migration_groups=tuple(g["name"] for g in raw["migration_groups"]),
        migration_group_labels={g["name"]: (g["en"], g["zh"]) for g in raw["migration_groups"]},
        analysis_codings={name: (c["from"], {int(k): (v[0], v[1]) for k, v in c["levels"].items()})
                          for name, c in raw["analysis_codings"].items()},
        education_map={int(k): int(v) for k, v in recodes["education"]["map"].items()},
        siblings_cap=int(recodes["siblings"]["cap"]),
        korean_code=int(recodes["ethnicity_korean"]["code"]),
        girl_code=int(recodes["girl"]["code"]),
        birth_day=int(recodes["age"]["birth_day"]),
        away_min_duration_code=int(recodes["away_min_duration_code"]),
        scales=raw["scales"],
        value_rules=raw["value_rules"],
        raw=raw,
    )
    _check(book)
    return book


def _check(book: Codebook) -> None:
    """Fail loudly on a codebook that contradicts itself."""
    q_names = [v.name for v in book.file_variables("questionnaires")]
    if len(q_names) != len(set(q_names)):
        raise ValueError("codebook: a questionnaire variable is listed twice")
    for v in book.variables:
        if v.kind == "code" and not v.codes:
            raise ValueError(f"codebook: {v.name} is a code without codes")
        if v.kind == "integer" and v.range is None:
            raise ValueError(f"codebook: {v.name} is an integer without a range")
        special = set(book.special_code_reasons) & set(v.valid_values or ())
        if special:
            raise ValueError(f"codebook: {v.name} uses special codes {special} as answers")
    for scale in book.scales:
        for item in book.scale_items(scale):
            book.variable(item)
