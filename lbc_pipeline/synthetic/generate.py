"""Synthetic survey waves: the calibrated reference wave 2019, its synthetic follow-up 2021
and scaled waves of any size.

A generated wave is what data entry would deliver (instrument.md section 1): a
`questionnaires` frame with one row per keyed questionnaire (raw codes, special codes,
empty cells, keying duplicates), a `distribution` frame with one row per school, and the
manifest of `wave.yaml`.

How a wave is built, in this order, with one numpy Generator so that a seed fixes every byte:

1. children: the analysis-level values (instrument.md section 4 codings) of every returned
   questionnaire. The reference wave takes its analysed children verbatim from the
   calibrated state (`state/analysed_2019.csv`), so that the published tables carry over;
   every other questionnaire, and every questionnaire of a scaled wave or of the follow-up,
   resamples a child of that state (the follow-up then shifts them, `FollowUpShifts`).
2. fates: each returned questionnaire is analysed, excluded (one primary exclusion reason)
   or invalid (one rule), in exact numbers (`FlowPlan`).
3. schools, classes and survey dates; then birth year and month, so that the age at the
   survey date (birth day the 15th) is the child's age.
4. raw answers encoded from the analysis values: raw education 1-8, raw siblings, ethnicity,
   Q1-Q3 with durations and destinations, marital status and custody.
5. damage by fate: the missing values, out-of-range keying errors, contradictions, blank
   questionnaires, unknown schools and dates that make each fate what it is, and nothing
   that would change it.
6. keying duplicates, questionnaire numbers, names and roll numbers.

Names, codes, ranges and rule orders come from the codebook; the numbers of questionnaires
handed out, returned, valid and analysed in the reference wave come from the published
sample flow (`reference/published_tables.json`). What a wave takes from its design rather
than from its children (fieldwork calendar, parents' destinations, what the manifest says)
is a `WaveDesign`: `REFERENCE_DESIGN` for 2019, `follow_up_design(...)` for the follow-up.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from lbc_pipeline.codebook import Codebook, load_codebook
from lbc_pipeline.config import REFERENCE_DIR
from lbc_pipeline.synthetic import names

STATE_DIR = Path(__file__).with_name("state")
PUBLISHED_TABLES = REFERENCE_DIR / "published_tables.json"
ANALYSED_FILE = "analysed_2019.csv"
EXCLUDED_TEACHER_FILE = "excluded_teacher_items_2019.csv"
REFERENCE_WAVE = "2019"
FIELDWORK = (dt.date(2019, 11, 1), dt.date(2020, 6, 30))

EMPTY = -(2**40)  # an empty cell while the raw columns are numpy arrays; written as null
ANALYSED = "analysed"
TEACHER_ITEMS = ("ht_ask_life", "ht_talk_guardian", "ht_praise")
SUPPORT_ITEMS = (
    "belong", *TEACHER_ITEMS, "ht_satisfaction", "best_friends", "class_closeness",
    "peer_satisfaction",
)
DEPRESSION_ITEMS = tuple(f"dep{i}" for i in range(1, 7))
CHILD_COLUMNS = (
    "group", *DEPRESSION_ITEMS, "girl", "age", "grade", "siblings", "korean", "mother_edu",
    "father_edu", *SUPPORT_ITEMS,
)

# Reasons in the numbers of the reference wave; a scaled wave keeps the proportions. The
# totals (47 invalid, 328 excluded) come from the published flow, these split them.
INVALID_WEIGHTS = {
    "conflicting_duplicate": 2,
    "outside_population": 12,
    "largely_blank": 18,
    "unknown_school": 6,
    "outside_fieldwork": 9,
}
EXCLUSION_WEIGHTS = {  # parents' education unknown most often, each reason under 10% of valid
    "deceased_parent": 7,
    "missing_depression": 38,
    "missing_migration_group": 42,
    "missing_gender": 4,
    "missing_age": 10,
    "missing_grade": 4,
    "missing_siblings": 8,
    "missing_ethnicity": 5,
    "missing_mother_edu": 84,
    "missing_father_edu": 50,
    "missing_belong": 14,
    "missing_ht_ask_life": 8,
    "missing_ht_talk_guardian": 5,
    "missing_ht_praise": 4,
    "missing_ht_satisfaction": 12,
    "missing_best_friends": 9,
    "missing_class_closeness": 12,
    "missing_peer_satisfaction": 12,
}
IDENTICAL_DUPLICATE_SHARE = 5 / 980

# Sub-patterns of some reasons (relative weights; every one occurs once there are enough rows).
POPULATION_PATTERNS = {"grade_6": 6, "age_16": 4, "age_8": 2}
FIELDWORK_PATTERNS = {"before": 4, "after": 5}
BLANK_PATTERNS = {"exactly_16": 1, "all_31": 2, "between": 15}
DEPRESSION_PATTERNS = {"items": 29, "fifteen_blank": 1}
MIGRATION_PATTERNS = {"q1_missing": 12, "contradictory": 11, "duration_missing": 12}
AGE_PATTERNS = {"birth_year": 4, "birth_month": 2, "date_empty": 1, "date_unreadable": 1}
BELONG_PATTERNS = {"item": 9, "page_skipped": 1}


@dataclass(frozen=True)
class MissingStyle:
    """How children leave one item without a usable answer: the share of each kind of cell
    (empty, -9 refused, -8 don't know, a keying error outside the item's range)."""

    empty: float
    refused: float
    dont_know: float = 0.0
    out_of_range: float = 0.0
    oor_values: tuple[int, ...] = ()


_ITEM_STYLE = MissingStyle(0.6, 0.25, 0.0, 0.15, (0, 6))
MISSING_STYLES: dict[str, MissingStyle] = {
    **{item: MissingStyle(0.55, 0.35, 0.0, 0.10, (0, 6, 33)) for item in DEPRESSION_ITEMS},
    "gender": MissingStyle(0.6, 0.3, 0.0, 0.1, (0, 3)),
    "birth_year": MissingStyle(0.7, 0.2, 0.0, 0.1, (206, 2106)),
    "birth_month": MissingStyle(0.5, 0.2, 0.2, 0.1, (0, 13)),
    "grade": MissingStyle(0.6, 0.2, 0.0, 0.2, (0, 77)),
    "siblings": MissingStyle(0.5, 0.3, 0.0, 0.2, (21, 30)),
    "ethnicity": MissingStyle(0.6, 0.3, 0.0, 0.1, (0, 4)),
    "mother_edu": MissingStyle(0.12, 0.08, 0.75, 0.05, (0, 9)),
    "father_edu": MissingStyle(0.12, 0.08, 0.75, 0.05, (0, 9)),
    "belong": MissingStyle(0.5, 0.2, 0.0, 0.3, (7, 44)),
    **{item: MissingStyle(0.6, 0.25, 0.0, 0.15, (0, 5, 44)) for item in TEACHER_ITEMS},
    "ht_satisfaction": _ITEM_STYLE,
    "best_friends": MissingStyle(0.6, 0.25, 0.0, 0.15, (0, 5)),
    "class_closeness": _ITEM_STYLE,
    "peer_satisfaction": _ITEM_STYLE,
    "parent_away": MissingStyle(0.6, 0.4),
    "mother_away_dur": MissingStyle(0.4, 0.2, 0.4),
    "father_away_dur": MissingStyle(0.4, 0.2, 0.4),
}
# Exclusion variables whose raw item may also be missing after an earlier primary reason
# (teacher items are handled apart: their count among the excluded is fixed).
SECONDARY_ITEMS = (
    "gender", "birth_year", "grade", "siblings", "ethnicity", "mother_edu", "father_edu",
    "belong", "ht_satisfaction", "best_friends", "class_closeness", "peer_satisfaction",
)
SECONDARY_SHARE = 0.15
FATHER_EDU_WITH_MOTHER_EDU = 0.4  # children who do not know one parent's education often
                                   # do not know the other's

# Raw answers behind the analysis codings.
RAW_EDUCATION_WEIGHTS = {1: 0.03, 2: 0.22, 3: 0.75, 4: 0.45, 5: 0.55, 6: 0.55, 7: 0.40, 8: 0.05}
RAW_SIBLINGS_TWO_OR_MORE = {2: 0.80, 3: 0.15, 4: 0.05}
OTHER_ETHNICITY_SHARE = 0.03  # non-Korean children who are neither Han nor Korean
MARITAL_WEIGHTS = {"married": 0.86, "divorced or separated": 0.11, "other": 0.03}
# Custody of divorced parents per migration group; `unknown` is answered -8 or left empty.
CUSTODY_WEIGHTS = {
    "none": {"mother": 0.40, "father": 0.35, "joint": 0.15, "unknown": 0.10},
    "mother": {"mother": 0.60, "joint": 0.25, "unknown": 0.15},
    "father": {"father": 0.60, "joint": 0.25, "unknown": 0.15},
    "both": {"joint": 0.60, "unknown": 0.40},
}
IGNORED_PARENT_AWAY = {"mother": 0.35, "father": 0.25}  # the parent without custody works away
AWAY_DURATION_WEIGHTS = (0.2, 0.4, 0.4)  # 6-12 months, 1-3 years, over 3 years
HOME_UNDER_SIX_MONTHS = 0.2  # a parent counted as not away who is out for under 6 months
# Answers of a child with no parent away for 6 months or more.
NOBODY_AWAY_PATTERNS = {"no_skip": 0.85, "yes_short": 0.09, "no_not_away": 0.03, "no_blank": 0.03}
DESTINATION_WEIGHTS = {  # elsewhere in Jilin, another province, South Korea, another country
    "korean": (0.12, 0.13, 0.65, 0.10),
    "han": (0.30, 0.50, 0.12, 0.08),
}
DESTINATION_DONT_KNOW = 0.03
DECEASED_FATHER_SHARE = 0.7

# The four schools of a site, as in the reference wave: each school's type and level (its
# name follows from them, `names.school_name`).
SITE_SCHOOLS = (
    {"type": 1, "level": 1},
    {"type": 1, "level": 2},
    {"type": 2, "level": 2},
    {"type": 2, "level": 2},
)
# The weeks in which each school of a site surveyed its classes, in SITE_SCHOOLS order
# (reference wave: classes stayed home from February to April 2020).
REFERENCE_SCHOOL_WINDOWS = (
    (dt.date(2019, 11, 4), dt.date(2019, 11, 29)),
    (dt.date(2019, 11, 11), dt.date(2019, 12, 20)),
    (dt.date(2019, 12, 2), dt.date(2020, 1, 10)),
    (dt.date(2020, 5, 11), dt.date(2020, 6, 24)),
)
SAME_TYPE_SCHOOL = 0.9  # secondary pupils in a school of their own ethnicity
HAN_SCHOOL_SPLIT = 0.52  # share of Han-school pupils in the first Han school of a site
CLASS_SIZE = 36
RETURNED_PER_SITE = 980
DESCRIPTION = "SYNTHETIC survey wave generated by lbc_pipeline.synthetic; not the data of Wang (2023)."
# The reference wave's interviews as the paper reports them (teachers include head teachers);
# written to wave.yaml under `interviews.expected`, generated by synthetic/interviews.py.
REFERENCE_INTERVIEWS = {"total": 41, "child": 18, "teacher": 13, "parent": 7, "grandparent": 3}

# The synthetic follow-up 2021: the same four schools two school years later (invented
# dates, as every date here), 960 questionnaires returned.
FOLLOW_UP_WAVE = "2021"
FOLLOW_UP_SEED = 2021
FOLLOW_UP_RETURNED = 960
FOLLOW_UP_FIELDWORK = (dt.date(2021, 11, 1), dt.date(2022, 6, 30))
FOLLOW_UP_SCHOOL_WINDOWS = (
    (dt.date(2021, 11, 8), dt.date(2021, 12, 3)),
    (dt.date(2021, 11, 15), dt.date(2021, 12, 24)),
    (dt.date(2021, 12, 6), dt.date(2022, 1, 14)),
    (dt.date(2022, 5, 9), dt.date(2022, 6, 24)),
)
FOLLOW_UP_DESCRIPTION = (
    "SYNTHETIC follow-up wave {wave} of the reference wave's four schools, generated by "
    "lbc_pipeline.synthetic with seed {seed} and the documented shifts of FollowUpShifts "
    "(listed under generator.shifts); not calibrated to anything and not the data of Wang (2023) "
    "or of any follow-up of that study."
)


@dataclass(frozen=True)
class WaveDesign:
    """What a wave takes from its design rather than from its children: the fieldwork
    window, the weeks each school of a site surveyed (SITE_SCHOOLS order), the draw weights
    of each parent's destination by family (DESTINATION_WEIGHTS' layout), the manifest's
    description, and whether the manifest states the analysed children's migration groups
    (`expected_groups`)."""

    fieldwork: tuple[dt.date, dt.date]
    school_windows: tuple[tuple[dt.date, dt.date], ...]
    destinations: Mapping[str, Mapping[str, tuple[float, ...]]]  # parent -> family -> weights
    description: str = DESCRIPTION
    expected_groups: bool = False


REFERENCE_DESIGN = WaveDesign(
    fieldwork=FIELDWORK,
    school_windows=REFERENCE_SCHOOL_WINDOWS,
    destinations={"mother": DESTINATION_WEIGHTS, "father": DESTINATION_WEIGHTS},
)


@dataclass(frozen=True)
class FollowUpShifts:
    """How the synthetic follow-up 2021 departs from the children of the calibrated state
    (the reference wave 2019). Invented, modest and not calibrated to anything: with the
    defaults the drift check (`lib/waves.DriftSettings`) flags the mother-only group's size
    and the shifts stay well short of absurd.

    - `mother_away_weight`: resampling weight of a child whose mother only is away, against
      1 for every other child (2019: 29 of 605 analysed, 4.8%; with 2.0, about 9%): more
      mothers left to work, mostly in South Korea;
    - `mother_south_korea_weight`: factor on the weight of South Korea among a mother's
      destinations (ethnic-Korean and Han families alike);
    - `belong_lower_share`: share of children whose school belonging is one point lower
      (floor 1): the mean falls by about 0.2 points, a quarter of 2019's SD (0.87);
    - `mother_away_depression_share`: share of the six depression items of each mother-only
      child one point higher (items at 5 stay): about +0.8 expected on that group's 6-30
      score, less than the chance in resampling a group of 29 children (SD 6.9);
    - `response_rate`: questionnaires returned over handed out (2019: 92.5%).
    """

    mother_away_weight: float = 2.0
    mother_south_korea_weight: float = 1.5
    belong_lower_share: float = 0.2
    mother_away_depression_share: float = 0.15
    response_rate: float = 0.90

    def __post_init__(self) -> None:
        for name in ("mother_away_weight", "mother_south_korea_weight"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive")
        for name in ("belong_lower_share", "mother_away_depression_share"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be a share between 0 and 1")
        if not 0 < self.response_rate <= 1:
            raise ValueError("response_rate must be in (0, 1]")


@dataclass(frozen=True)
class Wave:
    """One generated survey wave: the raw files and the manifest of `wave.yaml`."""

    questionnaires: pl.DataFrame
    distribution: pl.DataFrame
    manifest: dict


@dataclass(frozen=True)
class CalibratedState:
    """The calibrated analysis-level state: one row per analysed child (`analysed`) and the
    teacher items of the excluded valid questionnaires that answered all three."""

    analysed: pl.DataFrame
    excluded_teacher_items: pl.DataFrame
    sha256: str


@dataclass(frozen=True)
class FlowPlan:
    """How the returned questionnaires of a wave divide over the sample flow, in numbers of
    questionnaires (distinct qids)."""

    analysed: int
    invalid: Mapping[str, int]
    excluded: Mapping[str, int]
    teacher_missing: int  # excluded questionnaires missing at least one teacher item
    identical_duplicates: int
    distributed_by_type: Mapping[int, int] | None  # exact totals, or None: response rate
    response_rate: float

    @property
    def returned(self) -> int:
        return self.analysed + sum(self.invalid.values()) + sum(self.excluded.values())

    @property
    def valid(self) -> int:
        return self.returned - sum(self.invalid.values())


# --------------------------------------------------------------------------- inputs
def load_state(state_dir: Path = STATE_DIR) -> CalibratedState:
    """Read the calibrated state written by the calibration (`calibrate.py`)."""
    state_dir = Path(state_dir)
    paths = [state_dir / ANALYSED_FILE, state_dir / EXCLUDED_TEACHER_FILE]
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise FileNotFoundError(f"calibrated state not found: {', '.join(missing)}")
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.read_bytes())
    return CalibratedState(
        analysed=pl.read_csv(paths[0]),
        excluded_teacher_items=pl.read_csv(paths[1]),
        sha256=digest.hexdigest(),
    )


def published_flow() -> dict:
    """The sample flow as published: handed out (per school type), returned, valid, analysed."""
    return json.loads(PUBLISHED_TABLES.read_text(encoding="utf-8"))["sample_flow"]


def allocate(total: int, weights: Sequence[float]) -> np.ndarray:
    """Split `total` into integer counts proportional to `weights` (largest remainder)."""
    w = np.asarray(weights, dtype=float)
    exact = total * w / w.sum()
    counts = np.floor(exact).astype(np.int64)
    order = np.argsort(-(exact - counts), kind="stable")
    counts[order[: total - int(counts.sum())]] += 1
    return counts


def reference_plan(state: CalibratedState, flow: Mapping) -> FlowPlan:
    """The flow of the reference wave: the published counts, split by the reason weights."""
    analysed = state.analysed.height
    if analysed != flow["analysed"]:
        raise ValueError(f"the state holds {analysed} analysed children, the paper {flow['analysed']}")
    n_invalid = flow["returned"] - flow["valid"]
    n_excluded = flow["valid"] - flow["analysed"]
    return FlowPlan(
        analysed=analysed,
        invalid=dict(zip(INVALID_WEIGHTS, allocate(n_invalid, list(INVALID_WEIGHTS.values())).tolist())),
        excluded=dict(zip(EXCLUSION_WEIGHTS, allocate(n_excluded, list(EXCLUSION_WEIGHTS.values())).tolist())),
        teacher_missing=n_excluded - state.excluded_teacher_items.height,
        identical_duplicates=round(flow["returned"] * IDENTICAL_DUPLICATE_SHARE),
        distributed_by_type={1: flow["distributed_korean_schools"], 2: flow["distributed_han_schools"]},
        response_rate=flow["returned"] / flow["distributed"],
    )


def scaled_plan(n: int, reference: FlowPlan) -> FlowPlan:
    """A flow of `n` returned questionnaires in the reference wave's proportions."""
    ref_returned = reference.returned
    n_invalid, n_excluded = (
        round(n * sum(reference.invalid.values()) / ref_returned),
        round(n * sum(reference.excluded.values()) / ref_returned),
    )
    excluded = dict(zip(reference.excluded, allocate(n_excluded, list(reference.excluded.values())).tolist()))
    ref_excluded = sum(reference.excluded.values())
    return FlowPlan(
        analysed=n - n_invalid - n_excluded,
        invalid=dict(zip(reference.invalid, allocate(n_invalid, list(reference.invalid.values())).tolist())),
        excluded=excluded,
        teacher_missing=round(n_excluded * reference.teacher_missing / ref_excluded),
        identical_duplicates=round(n * IDENTICAL_DUPLICATE_SHARE),
        distributed_by_type=None,
        response_rate=reference.response_rate,
    )


# --------------------------------------------------------------------------- helpers
class _Codes:
    """Codes the generator needs, looked up in the codebook by their English labels."""

    def __init__(self, book: Codebook):
        self.book = book
        special = {s.reason: s.code for s in book.special_codes}
        self.refused, self.dont_know, self.not_applicable = (
            special["refused"], special["dont_know"], special["not_applicable"],
        )
        self.yes, self.no = self.of("parent_away", "yes"), self.of("parent_away", "no")
        self.marital = {label: self.of("parents_marital", label) for label in MARITAL_WEIGHTS}
        self.custody = {label: self.of("custody", label) for label in ("mother", "father", "joint")}
        durations = sorted(book.variable("mother_away_dur").codes)
        self.not_away = self.of("mother_away_dur", "not away")
        self.under_six = self.of("mother_away_dur", "under 6 months")
        self.away = np.array([c for c in durations if c >= book.away_min_duration_code])
        self.destinations = np.array(sorted(book.variable("mother_dest").codes))
        self.groups = book.migration_groups
        self.korean = book.korean_code
        self.han = self.of("ethnicity", "Han")
        self.other_ethnicity = self.of("ethnicity", "other")
        self.girl, self.boy = book.girl_code, self.of("gender", "boy")

    def of(self, variable: str, english: str) -> int:
        """The code of an answer of `variable`, by its English label."""
        for code, (en, _) in self.book.variable(variable).codes.items():
            if en == english:
                return code
        raise KeyError(f"{variable} has no answer {english!r}")


def _labels(counts: Sequence[int], rng: np.random.Generator) -> np.ndarray:
    """Indices 0..k-1 repeated by `counts`, in random order."""
    return rng.permutation(np.repeat(np.arange(len(counts)), counts))


def _patterns(n: int, weights: Mapping[str, float], rng: np.random.Generator) -> np.ndarray:
    """Exactly allocated sub-pattern names for `n` rows, in random order; every pattern
    occurs once `n` is at least the number of patterns."""
    counts = allocate(n, list(weights.values()))
    if n >= len(counts):
        while (counts == 0).any():
            counts[np.argmax(counts)] -= 1
            counts[np.argmin(counts)] += 1
    return np.asarray(list(weights))[_labels(counts, rng)]


def _choice(rng: np.random.Generator, values: Sequence[int], weights: Sequence[float], n: int) -> np.ndarray:
    w = np.asarray(weights, dtype=float)
    return np.asarray(values)[rng.choice(len(values), n, p=w / w.sum())]


def _blank(raw: dict[str, np.ndarray], rows: np.ndarray, variable: str, rng: np.random.Generator,
           codes: _Codes) -> None:
    """Leave `variable` without a usable answer in `rows`, in that item's style."""
    if len(rows) == 0:
        return
    style = MISSING_STYLES[variable]
    kind = _choice(rng, [0, 1, 2, 3], [style.empty, style.refused, style.dont_know, style.out_of_range], len(rows))
    oor = np.asarray(style.oor_values or (EMPTY,))[rng.integers(0, max(len(style.oor_values), 1), len(rows))]
    raw[variable][rows] = np.select(
        [kind == 0, kind == 1, kind == 2], [EMPTY, codes.refused, codes.dont_know], oor
    )


def _business_days(start: dt.date, end: dt.date) -> np.ndarray:
    days = np.arange(np.datetime64(start), np.datetime64(end) + 1)
    return days[np.is_busday(days)]


def _check_styles(book: Codebook) -> None:
    """Every out-of-range keying error is out of range and no special code."""
    special = set(book.special_code_reasons)
    for variable, style in MISSING_STYLES.items():
        valid = book.variable(variable).valid_values or frozenset()
        bad = [v for v in style.oor_values if v in valid or v in special]
        if bad:
            raise ValueError(f"{variable}: keying errors {bad} are valid answers or special codes")


# --------------------------------------------------------------------------- 1. children
def children_from_state(state: CalibratedState, codes: _Codes) -> dict[str, np.ndarray]:
    """The analysed children of the state as analysis-level arrays (group as 0..3)."""
    frame = state.analysed
    group_index = {g: i for i, g in enumerate(codes.groups)}
    out = {"group": np.array([group_index[g] for g in frame["migration_group"].to_list()])}
    for column in CHILD_COLUMNS[1:]:
        out[column] = frame[column].to_numpy().astype(np.int64)
    return out


def resample_children(children: dict[str, np.ndarray], n: int, rng: np.random.Generator,
                      weights: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """`n` children drawn with replacement from `children` (uniformly, or in proportion to
    one weight per child)."""
    if weights is None:
        pick = rng.integers(0, len(children["group"]), n)
    else:
        pick = rng.choice(len(children["group"]), n, p=weights / weights.sum())
    return {k: v[pick] for k, v in children.items()}


def shift_children(children: dict[str, np.ndarray], shifts: FollowUpShifts, codes: _Codes,
                   rng: np.random.Generator) -> None:
    """The follow-up's shifts of the children's answers (in place): school belonging one
    point lower for a share of all children, depression items one point higher for a share
    of the items of mother-only children. (The mother-only group's share is set when they
    are resampled.)"""
    n = len(children["group"])
    lower = rng.random(n) < shifts.belong_lower_share
    floor = min(codes.book.variable("belong").codes)
    children["belong"] = np.where(lower, np.maximum(children["belong"] - 1, floor), children["belong"])
    mother = children["group"] == codes.groups.index("mother")
    for item in DEPRESSION_ITEMS:
        higher = mother & (rng.random(n) < shifts.mother_away_depression_share)
        cap = max(codes.book.variable(item).codes)
        children[item] = np.where(higher, np.minimum(children[item] + 1, cap), children[item])


# --------------------------------------------------------------------------- 2. fates
@dataclass(frozen=True)
class Fates:
    """The fate of each returned questionnaire: `analysed`, an invalid rule or a primary
    exclusion reason, stored as an index into `names`."""

    names: tuple[str, ...]
    code: np.ndarray

    def __len__(self) -> int:
        return len(self.code)

    def mask(self, name: str) -> np.ndarray:
        return self.code == self.names.index(name)

    def rows(self, name: str) -> np.ndarray:
        return np.flatnonzero(self.mask(name))

    def isin(self, names_: Sequence[str]) -> np.ndarray:
        return np.isin(self.code, [self.names.index(n) for n in names_ if n in self.names])

    def rank(self, order: Sequence[str]) -> np.ndarray:
        """Each row's position in `order` (len(order) for fates not in it)."""
        position = np.array([list(order).index(n) if n in order else len(order) for n in self.names])
        return position[self.code]


def assign_fates(plan: FlowPlan, rng: np.random.Generator) -> Fates:
    """One fate per returned questionnaire: `analysed` for the first `plan.analysed` rows,
    then invalid rules and primary exclusion reasons in random order."""
    others = {**plan.invalid, **plan.excluded}
    code = np.concatenate([np.zeros(plan.analysed, dtype=np.int64), 1 + _labels(list(others.values()), rng)])
    return Fates(names=(ANALYSED, *others), code=code)


def change_population(children: dict[str, np.ndarray], fate: Fates, rng: np.random.Generator) -> None:
    """Children outside the study population: a grade-6 class, a 16-year-old in grade 9, an
    8-year-old in grade 5."""
    rows = fate.rows("outside_population")
    pattern = _patterns(len(rows), POPULATION_PATTERNS, rng)
    grade6 = rows[pattern == "grade_6"]
    children["grade"][grade6] = 6
    children["age"][grade6] = rng.choice([11, 12], len(grade6), p=[0.7, 0.3])
    old = rows[pattern == "age_16"]
    children["grade"][old], children["age"][old] = 9, 16
    young = rows[pattern == "age_8"]
    children["grade"][young], children["age"][young] = 5, 8


# --------------------------------------------------------------------------- 3. schools
@dataclass(frozen=True)
class Placement:
    """Where each returned questionnaire was filled in: true school (0-based index into the
    wave's schools), class number within school and grade, and the class's survey date."""

    school: np.ndarray
    class_no: np.ndarray
    class_date: np.ndarray  # datetime64[D]


def place_children(children: dict[str, np.ndarray], fate: Fates, n_sites: int,
                   korean_school_target: int | None, rng: np.random.Generator,
                   school_windows: Sequence[tuple[dt.date, dt.date]] = REFERENCE_SCHOOL_WINDOWS) -> Placement:
    """Put each child in a school, a class and a survey date.

    Primary grades go to the site's ethnic-Korean primary school; secondary pupils mostly to
    a school of their own ethnicity. With `korean_school_target`, the questionnaires that are
    not analysed fill the ethnic-Korean schools to exactly that number. A class's survey
    date is a weekday in its school's window (`school_windows`, SITE_SCHOOLS order).
    """
    n = len(fate)
    korean, grade = children["korean"] == 1, children["grade"]
    primary = grade <= 6
    p_korean_school = np.where(korean, SAME_TYPE_SCHOOL, 1 - SAME_TYPE_SCHOOL)
    korean_school = primary | (rng.random(n) < p_korean_school)
    if korean_school_target is not None:
        free = np.flatnonzero(~fate.mask(ANALYSED) & ~primary)
        fixed = int(korean_school[fate.mask(ANALYSED)].sum() + (primary & ~fate.mask(ANALYSED)).sum())
        take = korean_school_target - fixed
        if not 0 <= take <= len(free):
            raise ValueError(f"cannot fill the ethnic-Korean schools to {korean_school_target}")
        keys = np.log(p_korean_school[free]) + rng.gumbel(size=len(free))
        korean_school[free] = False
        korean_school[free[np.argsort(-keys, kind="stable")[:take]]] = True
    position = np.where(primary, 0, np.where(korean_school, 1, np.where(rng.random(n) < HAN_SCHOOL_SPLIT, 2, 3)))
    school = rng.integers(0, n_sites, n) * len(SITE_SCHOOLS) + position

    cohort = school.astype(np.int64) * 100 + grade
    _, inverse, counts = np.unique(cohort, return_inverse=True, return_counts=True)
    n_classes = np.maximum(1, np.rint(counts / CLASS_SIZE)).astype(np.int64)
    class_no = (rng.random(n) * n_classes[inverse]).astype(np.int64) + 1

    classes, class_of_row = np.unique(cohort * 100 + class_no, return_inverse=True)
    class_position = (classes // 10_000) % len(SITE_SCHOOLS)
    class_date = np.empty(len(classes), dtype="datetime64[D]")
    for pos, window in enumerate(school_windows):
        days = _business_days(*window)
        here = class_position == pos
        class_date[here] = days[rng.integers(0, len(days), int(here.sum()))]
    return Placement(school=school, class_no=class_no, class_date=class_date[class_of_row])


def survey_dates(placement: Placement, fate: Fates, rng: np.random.Generator,
                 fieldwork: tuple[dt.date, dt.date] = FIELDWORK) -> np.ndarray:
    """Each questionnaire's survey date: its class's, except keying errors that put it
    outside the fieldwork window (the `outside_fieldwork` questionnaires)."""
    dates = placement.class_date.copy()
    rows = fate.rows("outside_fieldwork")
    pattern = _patterns(len(rows), FIELDWORK_PATTERNS, rng)
    start, end = np.datetime64(fieldwork[0]), np.datetime64(fieldwork[1])
    before = rows[pattern == "before"]
    dates[before] = np.busday_offset(start - rng.integers(1, 29, len(before)), 0, roll="backward")
    after = rows[pattern == "after"]
    dates[after] = np.busday_offset(end + rng.integers(1, 46, len(after)), 0, roll="forward")
    return dates


def birth_dates(age: np.ndarray, dates: np.ndarray, birth_day: int,
                rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Birth year and month such that the completed years at `dates` (birth day the
    `birth_day`th) are exactly `age`."""
    year = dates.astype("datetime64[Y]").astype(np.int64) + 1970
    month = dates.astype("datetime64[M]").astype(np.int64) % 12 + 1
    day = (dates - dates.astype("datetime64[M]")).astype(np.int64) + 1
    birth_month = rng.integers(1, 13, len(age))
    before_birthday = (month < birth_month) | ((month == birth_month) & (day < birth_day))
    return year - age - before_birthday.astype(np.int64), birth_month


# --------------------------------------------------------------------------- 4. raw answers
def encode_child(children: dict[str, np.ndarray], codes: _Codes, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Raw answers of the child section from the analysis codings."""
    n = len(children["group"])
    book = codes.book
    siblings = children["siblings"].copy()
    many = siblings >= book.siblings_cap
    siblings[many] = _choice(rng, list(RAW_SIBLINGS_TWO_OR_MORE), list(RAW_SIBLINGS_TWO_OR_MORE.values()), int(many.sum()))
    ethnicity = np.where(children["korean"] == 1, codes.korean,
                         np.where(rng.random(n) < OTHER_ETHNICITY_SHARE, codes.other_ethnicity, codes.han))
    raw = {
        "gender": np.where(children["girl"] == 1, codes.girl, codes.boy),
        "grade": children["grade"].copy(),
        "siblings": siblings,
        "ethnicity": ethnicity,
    }
    for parent in ("mother_edu", "father_edu"):
        level = children[parent]
        out = np.empty(n, dtype=np.int64)
        for analysis_code in sorted(set(book.education_map.values())):
            raw_codes = [c for c, a in book.education_map.items() if a == analysis_code]
            rows = level == analysis_code
            out[rows] = _choice(rng, raw_codes, [RAW_EDUCATION_WEIGHTS[c] for c in raw_codes], int(rows.sum()))
        raw[parent] = out
    return raw


def encode_migration(children: dict[str, np.ndarray], codes: _Codes, rng: np.random.Generator,
                     destinations: Mapping[str, Mapping[str, Sequence[float]]] | None = None) -> dict[str, np.ndarray]:
    """Raw answers of the parents-and-migration section that give each child its migration
    group under instrument.md's rules (6-month rule, custody rule). `destinations`: the
    draw weights of each parent's destination by family (default DESTINATION_WEIGHTS for
    both parents)."""
    n = len(children["group"])
    group = children["group"]
    g = {name: group == i for i, name in enumerate(codes.groups)}
    mother_counted = g["mother"] | g["both"]
    father_counted = g["father"] | g["both"]

    marital = _choice(rng, [codes.marital[k] for k in MARITAL_WEIGHTS], list(MARITAL_WEIGHTS.values()), n)
    custody = np.full(n, codes.not_applicable)
    divorced = marital == codes.marital["divorced or separated"]
    unknown_custody = _choice(rng, [codes.dont_know, EMPTY], [0.7, 0.3], n)
    for name, weights in CUSTODY_WEIGHTS.items():
        rows = np.flatnonzero(divorced & g[name])
        values = [codes.custody.get(k, -1) for k in weights]
        drawn = _choice(rng, values, list(weights.values()), len(rows))
        custody[rows] = np.where(drawn == -1, unknown_custody[rows], drawn)

    mother_away, father_away = mother_counted.copy(), father_counted.copy()
    with_mother = divorced & (custody == codes.custody["mother"])
    with_father = divorced & (custody == codes.custody["father"])
    father_away[with_mother] = rng.random(int(with_mother.sum())) < IGNORED_PARENT_AWAY["father"]
    mother_away[with_father] = rng.random(int(with_father.sum())) < IGNORED_PARENT_AWAY["mother"]

    def durations(away: np.ndarray) -> np.ndarray:
        long = _choice(rng, codes.away, AWAY_DURATION_WEIGHTS, n)
        home = np.where(rng.random(n) < HOME_UNDER_SIX_MONTHS, codes.under_six, codes.not_away)
        return np.where(away, long, home)

    mother_dur, father_dur = durations(mother_away), durations(father_away)
    q1 = np.where(mother_away | father_away, codes.yes, codes.no)
    nobody = np.flatnonzero(~(mother_away | father_away))
    pattern = _choice(rng, list(NOBODY_AWAY_PATTERNS), list(NOBODY_AWAY_PATTERNS.values()), len(nobody))
    short = nobody[pattern == "yes_short"]
    q1[short] = codes.yes
    neither_short = short[(mother_dur[short] != codes.under_six) & (father_dur[short] != codes.under_six)]
    father_dur[neither_short] = codes.under_six
    for name, value in (("no_skip", codes.not_applicable), ("no_not_away", codes.not_away), ("no_blank", EMPTY)):
        rows = nobody[pattern == name]
        mother_dur[rows], father_dur[rows] = value, value

    out = {
        "mother_alive": np.full(n, codes.yes),
        "father_alive": np.full(n, codes.yes),
        "parents_marital": marital,
        "custody": custody,
        "parent_away": q1,
        "mother_away_dur": mother_dur,
        "father_away_dur": father_dur,
    }
    korean = children["korean"] == 1
    for parent, dur in (("mother", mother_dur), ("father", father_dur)):
        works_out = (dur == codes.under_six) | np.isin(dur, codes.away)
        weights = (destinations or {}).get(parent, DESTINATION_WEIGHTS)
        drawn = np.where(
            korean,
            _choice(rng, codes.destinations, weights["korean"], n),
            _choice(rng, codes.destinations, weights["han"], n),
        )
        drawn = np.where(rng.random(n) < DESTINATION_DONT_KNOW, codes.dont_know, drawn)
        out[f"{parent}_dest"] = np.where(works_out, drawn, codes.not_applicable)
    return out


# --------------------------------------------------------------------------- 5. damage
def damage_excluded(raw: dict[str, np.ndarray], fate: Fates, plan: FlowPlan, codes: _Codes,
                    dates: dict[str, np.ndarray], rng: np.random.Generator) -> None:
    """Give every excluded questionnaire its primary reason, and some later ones.

    Only variables later in the exclusion order than the primary reason are damaged as well,
    so that the primary reason stays the first that applies. Exactly `plan.teacher_missing`
    excluded questionnaires miss at least one teacher item.
    """
    _lose_a_parent(raw, fate.rows("deceased_parent"), codes, rng)
    depression = fate.rows("missing_depression")
    pattern = _patterns(len(depression), DEPRESSION_PATTERNS, rng)
    _blank_depression_items(raw, depression[pattern == "items"], codes, rng)
    _confuse_migration(raw, fate.rows("missing_migration_group"), codes, rng)
    _lose_age(raw, fate.rows("missing_age"), dates, codes, rng)
    belong = fate.rows("missing_belong")
    pattern_belong = _patterns(len(belong), BELONG_PATTERNS, rng)
    _blank(raw, belong[pattern_belong == "item"], "belong", rng, codes)
    for item in SUPPORT_ITEMS:  # the school-support page left out
        raw[item][belong[pattern_belong == "page_skipped"]] = EMPTY
    for item in TEACHER_ITEMS:
        rows = fate.rows(f"missing_{item}")
        _blank(raw, rows, item, rng, codes)
        later = TEACHER_ITEMS[TEACHER_ITEMS.index(item) + 1:]
        if later:
            _blank(raw, rows[rng.random(len(rows)) < 0.3], later[rng.integers(0, len(later))], rng, codes)
    for variable in ("gender", "grade", "siblings", "ethnicity", "mother_edu", "father_edu",
                     "ht_satisfaction", "best_friends", "class_closeness", "peer_satisfaction"):
        _blank(raw, fate.rows(f"missing_{variable}"), variable, rng, codes)

    near_blank = depression[pattern == "fifteen_blank"]
    open_rows = fate.isin(codes.book.exclusion_reasons)
    open_rows[near_blank] = False
    _add_later_reasons(raw, fate, open_rows, codes, rng)
    _blank_teacher_items(raw, fate, open_rows, plan.teacher_missing, codes, rng)
    _leave_fifteen_blank(raw, near_blank, codes, rng)


def _lose_a_parent(raw: dict[str, np.ndarray], rows: np.ndarray, codes: _Codes, rng: np.random.Generator) -> None:
    """A deceased father (mostly) or mother: not alive, duration and destination not
    applicable, marital status `other`."""
    father = rng.random(len(rows)) < DECEASED_FATHER_SHARE
    for parent, who in (("father", rows[father]), ("mother", rows[~father])):
        raw[f"{parent}_alive"][who] = codes.no
        raw[f"{parent}_away_dur"][who] = codes.not_applicable
        raw[f"{parent}_dest"][who] = codes.not_applicable
    raw["parents_marital"][rows] = codes.marital["other"]
    raw["custody"][rows] = codes.not_applicable


def _blank_depression_items(raw: dict[str, np.ndarray], rows: np.ndarray, codes: _Codes,
                            rng: np.random.Generator) -> None:
    """One to three of the six depression items without a usable answer."""
    n_items = _choice(rng, [1, 2, 3], [0.6, 0.25, 0.15], len(rows))
    rank = np.argsort(rng.random((len(rows), len(DEPRESSION_ITEMS))), axis=1)  # a random order of items
    for k, item in enumerate(DEPRESSION_ITEMS):
        _blank(raw, rows[rank[:, k] < n_items], item, rng, codes)


def _confuse_migration(raw: dict[str, np.ndarray], rows: np.ndarray, codes: _Codes,
                       rng: np.random.Generator) -> None:
    """Migration answers that leave the group unknown: Q1 missing; Q1 = no with a parent away
    6 months or more (contradictory); Q1 = yes with a duration missing. Parents married, so
    that no custody rule can make a missing duration irrelevant."""
    raw["parents_marital"][rows] = codes.marital["married"]
    raw["custody"][rows] = codes.not_applicable
    pattern = _patterns(len(rows), MIGRATION_PATTERNS, rng)
    _blank(raw, rows[pattern == "q1_missing"], "parent_away", rng, codes)
    contra = rows[pattern == "contradictory"]
    raw["parent_away"][contra] = codes.no
    neither = contra[~np.isin(raw["mother_away_dur"][contra], codes.away)
                     & ~np.isin(raw["father_away_dur"][contra], codes.away)]
    raw["father_away_dur"][neither] = _choice(rng, codes.away, AWAY_DURATION_WEIGHTS, len(neither))
    raw["father_dest"][neither] = _choice(rng, codes.destinations, DESTINATION_WEIGHTS["korean"], len(neither))
    unsure = rows[pattern == "duration_missing"]
    raw["parent_away"][unsure] = codes.yes
    for parent in ("mother", "father"):
        skipped = unsure[raw[f"{parent}_away_dur"][unsure] == codes.not_applicable]
        raw[f"{parent}_away_dur"][skipped] = codes.not_away
    mother_side = rng.random(len(unsure)) < 0.4
    _blank(raw, unsure[mother_side], "mother_away_dur", rng, codes)
    _blank(raw, unsure[~mother_side], "father_away_dur", rng, codes)


def _lose_age(raw: dict[str, np.ndarray], rows: np.ndarray, dates: dict[str, np.ndarray], codes: _Codes,
              rng: np.random.Generator) -> None:
    """Age unknown: birth year or month missing, or the survey date empty or impossible."""
    pattern = _patterns(len(rows), AGE_PATTERNS, rng)
    _blank(raw, rows[pattern == "birth_year"], "birth_year", rng, codes)
    _blank(raw, rows[pattern == "birth_month"], "birth_month", rng, codes)
    dates["empty"][rows[pattern == "date_empty"]] = True
    dates["unreadable"][rows[pattern == "date_unreadable"]] = True


def _add_later_reasons(raw: dict[str, np.ndarray], fate: Fates, open_rows: np.ndarray, codes: _Codes,
                       rng: np.random.Generator) -> None:
    """Further missing values after the primary reason: a father's education unknown with
    the mother's, and now and then one more item later in the exclusion order."""
    order = codes.book.exclusion_reasons
    rows = fate.rows("missing_mother_edu")
    _blank(raw, rows[open_rows[rows] & (rng.random(len(rows)) < FATHER_EDU_WITH_MOTHER_EDU)], "father_edu", rng, codes)
    rank = fate.rank(order)
    extra = np.flatnonzero(open_rows & (rng.random(len(fate)) < SECONDARY_SHARE))
    item_rank = np.array([order.index(f"missing_{'age' if v == 'birth_year' else v}") for v in SECONDARY_ITEMS])
    choice = rng.integers(0, len(SECONDARY_ITEMS), len(extra))
    later = item_rank[choice] > rank[extra]
    for k, variable in enumerate(SECONDARY_ITEMS):
        _blank(raw, extra[later & (choice == k)], variable, rng, codes)


def _blank_teacher_items(raw: dict[str, np.ndarray], fate: Fates, open_rows: np.ndarray, total: int,
                         codes: _Codes, rng: np.random.Generator) -> None:
    """A teacher item missing after an earlier primary reason, until `total` excluded
    questionnaires miss at least one teacher item."""
    order = codes.book.exclusion_reasons
    missing = _teacher_missing(raw, codes)
    excluded = fate.isin(order)
    eligible = np.flatnonzero(open_rows & (fate.rank(order) < order.index("missing_ht_ask_life")) & ~missing)
    needed = total - int((missing & excluded).sum())
    if not 0 <= needed <= len(eligible):
        raise ValueError(f"cannot leave teacher items missing in exactly {total} excluded questionnaires")
    chosen = np.sort(rng.choice(eligible, needed, replace=False))
    which = rng.integers(0, len(TEACHER_ITEMS), needed)
    for k, item in enumerate(TEACHER_ITEMS):
        _blank(raw, chosen[which == k], item, rng, codes)


def _leave_fifteen_blank(raw: dict[str, np.ndarray], rows: np.ndarray, codes: _Codes,
                         rng: np.random.Generator) -> None:
    """Questionnaires one item short of largely blank: the six depression items and more,
    15 substantive items in all empty (teacher items answered)."""
    book = codes.book
    target = book.largely_blank_threshold - 1
    for r in rows:
        blank = {i for i in book.substantive_items if raw[i][r] in (EMPTY, codes.refused)} | set(DEPRESSION_ITEMS)
        candidates = [i for i in book.substantive_items if i not in blank and i not in TEACHER_ITEMS]
        for item in sorted(blank) + list(rng.choice(candidates, target - len(blank), replace=False)):
            raw[item][r] = EMPTY


def _teacher_missing(raw: dict[str, np.ndarray], codes: _Codes) -> np.ndarray:
    """Rows without a usable answer on at least one teacher item."""
    missing = np.zeros(len(raw["gender"]), dtype=bool)
    for item in TEACHER_ITEMS:
        missing |= ~np.isin(raw[item], list(codes.book.variable(item).codes))
    return missing


def damage_invalid(raw: dict[str, np.ndarray], fate: Fates, codes: _Codes,
                   rng: np.random.Generator) -> None:
    """Largely blank questionnaires: 16 or more of the 31 substantive items empty or -9.
    (Outside the population and outside the fieldwork were set before the births; unknown
    schools and conflicting duplicates when the rows are keyed.)"""
    items = codes.book.substantive_items
    rows = fate.rows("largely_blank")
    pattern = _patterns(len(rows), BLANK_PATTERNS, rng)
    threshold = codes.book.largely_blank_threshold
    n_blank = np.where(pattern == "exactly_16", threshold,
                       np.where(pattern == "all_31", len(items), rng.integers(threshold + 1, len(items), len(rows))))
    already = np.column_stack([np.isin(raw[item][rows], [EMPTY, codes.refused]) for item in items])
    # a random order of items, those already blank first, so that exactly n_blank are blank
    rank = np.argsort(np.argsort(rng.random((len(rows), len(items))) - already, axis=1), axis=1)
    refused = rng.random((len(rows), len(items))) < 0.1
    for k, item in enumerate(items):
        hit = rank[:, k] < n_blank
        raw[item][rows[hit]] = np.where(refused[hit, k], codes.refused, EMPTY)


def assign_teacher_triples(raw: dict[str, np.ndarray], fate: Fates, triples: pl.DataFrame,
                           codes: _Codes, rng: np.random.Generator) -> None:
    """The excluded questionnaires that answered all three teacher items get the state's
    triples (which, with the analysed children's, fix the teacher-attitude factor)."""
    excluded = fate.isin(codes.book.exclusion_reasons)
    rows = np.flatnonzero(excluded & ~_teacher_missing(raw, codes))
    if len(rows) != triples.height:
        raise ValueError(f"{len(rows)} excluded questionnaires answered the teacher items, the state has {triples.height}")
    rows = rng.permutation(rows)
    for item in TEACHER_ITEMS:
        raw[item][rows] = triples[item].to_numpy()


# --------------------------------------------------------------------------- 6. keying
def key_questionnaires(raw: dict[str, np.ndarray], children: dict[str, np.ndarray], fate: Fates,
                       placement: Placement, dates: dict[str, np.ndarray], plan: FlowPlan,
                       n_schools: int, wave: str, codes: _Codes, rng: np.random.Generator) -> pl.DataFrame:
    """The questionnaires file: questionnaire numbers, schools as keyed, classes, dates,
    names and roll numbers; keying duplicates; columns in codebook order, rows in keying
    order (by qid, a second keying right after the first)."""
    n = len(fate)
    grade, school, class_no = children["grade"], placement.school, placement.class_no
    entry_order = np.lexsort((rng.random(n), class_no, grade, school))
    serial = np.empty(n, dtype=np.int64)
    serial[entry_order] = np.arange(1, n + 1)

    keyed_school = school + 1
    unknown = fate.rows("unknown_school")
    keyed_school[unknown] = np.array([n_schools + 1, n_schools + 2, 0])[rng.integers(0, 3, len(unknown))]

    date_text = pl.Series(dates["date"]).dt.to_string("%Y-%m-%d")
    bad = np.flatnonzero(dates["unreadable"])
    month = dates["date"][bad].astype("datetime64[M]")
    days_in_month = ((month + 1).astype("datetime64[D]") - month.astype("datetime64[D]")).astype(np.int64)
    impossible = [f"{m}-{d + 1:02d}" for m, d in zip(np.datetime_as_string(month), days_in_month)]
    date_text = date_text.scatter(bad, pl.Series(impossible, dtype=pl.String))
    date_text = date_text.scatter(np.flatnonzero(dates["empty"]), None)

    school_year = placement.class_date.astype("datetime64[Y]").astype(np.int64) + 1970
    school_year -= (placement.class_date.astype("datetime64[M]").astype(np.int64) % 12 + 1) < 9
    first_grade = np.where(grade <= 6, 1, 7)
    seat = (
        pl.DataFrame({"s": school, "g": grade, "c": class_no, "q": serial})
        .select(pl.col("q").rank("ordinal").over("s", "g", "c")).to_series().to_numpy()
    )
    text = pl.DataFrame({"serial": serial, "school": keyed_school, "grade": grade, "class": class_no}).select(
        pl.concat_str(pl.lit(f"HC{wave}-"), pl.col("serial").cast(pl.String).str.zfill(max(4, len(str(n))))).alias("qid"),
        pl.concat_str(pl.lit("S"), pl.col("school").cast(pl.String)).alias("school_id"),
        pl.concat_str(pl.col("grade").cast(pl.String), pl.lit("-"), pl.col("class").cast(pl.String)).alias("class_id"),
    ).with_columns(
        date_text.alias("survey_date"),
        names.draw_student_names(rng, children["korean"], children["girl"]),
        names.assign_roll_numbers(school + 1, school_year - (grade - first_grade), class_no, seat),
    )

    # keying duplicates: identical copies, and second keyings of the conflicting questionnaires
    # (appended to the answers as rows n, n+1, ... and changed there)
    conflicting = fate.rows("conflicting_duplicate")
    identical = np.sort(rng.choice(np.flatnonzero(~fate.mask("conflicting_duplicate")),
                                   plan.identical_duplicates, replace=False))
    numeric = [v.name for v in codes.book.file_variables("questionnaires") if v.is_numeric]
    answers = {name: np.concatenate([raw[name], raw[name][conflicting]]) for name in numeric}
    _rekey_with_differences(answers, np.arange(n, n + len(conflicting)), codes, rng)
    source = np.concatenate([np.arange(n), identical, n + np.arange(len(conflicting))])
    questionnaire = np.concatenate([np.arange(n), identical, conflicting])
    order = np.lexsort((source != questionnaire, serial[questionnaire]))  # stable: first keying first
    keyed = pl.concat(
        [text[questionnaire[order]], pl.DataFrame(answers)[source[order]]], how="horizontal"
    ).with_columns([pl.when(pl.col(c) == EMPTY).then(None).otherwise(pl.col(c)).alias(c) for c in numeric])
    return keyed.select([v.name for v in codes.book.file_variables("questionnaires")])


def _rekey_with_differences(values: dict[str, np.ndarray], rows: np.ndarray, codes: _Codes,
                            rng: np.random.Generator) -> None:
    """The second keying of a questionnaire (`rows`): one or two answers keyed differently."""
    items = DEPRESSION_ITEMS + SUPPORT_ITEMS
    n_changes = rng.integers(1, 3, len(rows))
    rank = np.argsort(rng.random((len(rows), len(items))), axis=1)  # a random order of items
    for k, item in enumerate(items):
        hit = rows[rank[:, k] < n_changes]
        valid = sorted(codes.book.variable(item).codes)
        old = values[item][hit]
        values[item][hit] = valid[0] + (old - valid[0] + rng.integers(1, len(valid), len(hit))) % len(valid)


def distribution_frame(school_of_row: np.ndarray, n_schools: int, plan: FlowPlan,
                       rng: np.random.Generator) -> pl.DataFrame:
    """The distribution file: per school, the questionnaires returned there plus those that
    did not come back (per school type exactly as planned, or at the response rate)."""
    returned = np.bincount(school_of_row, minlength=n_schools)
    school_type = np.array([SITE_SCHOOLS[i % len(SITE_SCHOOLS)]["type"] for i in range(n_schools)])
    level = np.array([SITE_SCHOOLS[i % len(SITE_SCHOOLS)]["level"] for i in range(n_schools)])
    if plan.distributed_by_type is not None:
        not_returned = np.zeros(n_schools, dtype=np.int64)
        for kind, total in plan.distributed_by_type.items():
            here = np.flatnonzero(school_type == kind)
            missing = total - int(returned[here].sum())
            if missing < 0:
                raise ValueError(f"more questionnaires returned than handed out in school type {kind}")
            not_returned[here] = allocate(missing, returned[here] + 1)
    else:
        not_returned = rng.binomial(returned, 1 - plan.response_rate)
    return pl.DataFrame({
        "school_id": [f"S{i + 1}" for i in range(n_schools)],
        "school_name": [names.school_name(i, SITE_SCHOOLS[i % len(SITE_SCHOOLS)]["type"],
                                          SITE_SCHOOLS[i % len(SITE_SCHOOLS)]["level"], len(SITE_SCHOOLS))
                        for i in range(n_schools)],
        "school_type": school_type,
        "school_level": level,
        "distributed": returned + not_returned,
    })


# --------------------------------------------------------------------------- the waves
def build_wave(children: dict[str, np.ndarray], plan: FlowPlan, n_sites: int, wave: str,
               teacher_triples: pl.DataFrame | None, generator: dict, rng: np.random.Generator,
               design: WaveDesign = REFERENCE_DESIGN) -> Wave:
    """Steps 2-6 of the module docstring, for the children of one wave (analysed first).

    The manifest's `expected` counts hold by construction: the plan fixes every fate, and
    the damage of step 5 gives each questionnaire exactly its fate. So do its
    `expected_groups` (when the design asks for them): the analysed children's raw
    migration answers encode their groups, and nothing damages them.
    """
    book = load_codebook()
    _check_styles(book)
    codes = _Codes(book)
    fate = assign_fates(plan, rng)
    change_population(children, fate, rng)
    target = None
    if plan.distributed_by_type is not None:
        total = sum(plan.distributed_by_type.values())
        not_returned = allocate(total - plan.returned, list(plan.distributed_by_type.values()))
        target = plan.distributed_by_type[1] - int(not_returned[0])
    placement = place_children(children, fate, n_sites, target, rng, design.school_windows)
    dates = {"date": survey_dates(placement, fate, rng, design.fieldwork),
             "empty": np.zeros(len(fate), dtype=bool), "unreadable": np.zeros(len(fate), dtype=bool)}
    birth_year, birth_month = birth_dates(children["age"], dates["date"], book.birth_day, rng)

    raw = {"birth_year": birth_year, "birth_month": birth_month}
    raw.update(encode_child(children, codes, rng))
    raw.update(encode_migration(children, codes, rng, design.destinations))
    for item in DEPRESSION_ITEMS + SUPPORT_ITEMS:
        raw[item] = children[item].copy()
    damage_excluded(raw, fate, plan, codes, dates, rng)
    damage_invalid(raw, fate, codes, rng)
    if teacher_triples is not None:
        assign_teacher_triples(raw, fate, teacher_triples, codes, rng)

    n_schools = n_sites * len(SITE_SCHOOLS)
    questionnaires = key_questionnaires(raw, children, fate, placement, dates, plan, n_schools, wave, codes, rng)
    distribution = distribution_frame(placement.school, n_schools, plan, rng)
    manifest = {
        "wave": wave,
        "synthetic": True,
        "description": design.description,
        "fieldwork": {"start": design.fieldwork[0], "end": design.fieldwork[1]},
        "expected": {
            "distributed": int(distribution["distributed"].sum()),
            "returned": plan.returned,
            "valid": plan.valid,
            "analysed": plan.analysed,
        },
    }
    if design.expected_groups:
        groups = np.bincount(children["group"][fate.mask(ANALYSED)], minlength=len(codes.groups))
        manifest["expected_groups"] = {name: int(k) for name, k in zip(codes.groups, groups)}
    manifest["generator"] = generator
    return Wave(questionnaires=questionnaires, distribution=distribution, manifest=manifest)


def generate_reference_wave(seed: int = 2019, state_dir: Path = STATE_DIR) -> Wave:
    """The reference wave 2019: 1,059 handed out, 980 returned, 933 valid, 605 analysed, the
    analysed children exactly those of the calibrated state."""
    rng = np.random.default_rng(seed)
    state = load_state(state_dir)
    plan = reference_plan(state, published_flow())
    codes = _Codes(load_codebook())
    analysed = children_from_state(state, codes)
    others = resample_children(analysed, plan.returned - plan.analysed, rng)
    children = {k: np.concatenate([analysed[k], others[k]]) for k in CHILD_COLUMNS}
    generator = {"mode": "reference", "seed": seed, "state_sha256": state.sha256}
    wave = build_wave(children, plan, 1, REFERENCE_WAVE, state.excluded_teacher_items, generator, rng)
    manifest = {k: v for k, v in wave.manifest.items() if k != "generator"}
    manifest["interviews"] = {"expected": dict(REFERENCE_INTERVIEWS)}
    manifest["generator"] = generator
    return dataclasses.replace(wave, manifest=manifest)


def generate_scaled_wave(n: int, seed: int, wave: str = "scaled", state_dir: Path = STATE_DIR) -> Wave:
    """A wave of `n` returned questionnaires with the reference wave's structure and
    proportions (not calibrated): children resampled from the state, one site of four
    schools per 980 questionnaires."""
    if n < 1:
        raise ValueError("a scaled wave needs at least one questionnaire")
    rng = np.random.default_rng(seed)
    state = load_state(state_dir)
    plan = scaled_plan(n, reference_plan(state, published_flow()))
    children = resample_children(children_from_state(state, _Codes(load_codebook())), n, rng)
    n_sites = max(1, round(n / RETURNED_PER_SITE))
    generator = {"mode": "scaled", "seed": seed, "n": n, "state_sha256": state.sha256}
    return build_wave(children, plan, n_sites, wave, None, generator, rng)


def follow_up_design(shifts: FollowUpShifts, wave: str, seed: int, codes: _Codes) -> WaveDesign:
    """The follow-up's design: its fieldwork calendar, mothers' destinations shifted towards
    South Korea, a description that says what the wave is, and its migration groups stated."""
    south_korea = int(np.flatnonzero(codes.destinations == codes.of("mother_dest", "South Korea"))[0])
    mothers = {
        family: tuple(w * shifts.mother_south_korea_weight if k == south_korea else w for k, w in enumerate(weights))
        for family, weights in DESTINATION_WEIGHTS.items()
    }
    return WaveDesign(
        fieldwork=FOLLOW_UP_FIELDWORK,
        school_windows=FOLLOW_UP_SCHOOL_WINDOWS,
        destinations={"mother": mothers, "father": DESTINATION_WEIGHTS},
        description=FOLLOW_UP_DESCRIPTION.format(wave=wave, seed=seed),
        expected_groups=True,
    )


def follow_up_plan(reference: FlowPlan, shifts: FollowUpShifts) -> FlowPlan:
    """The follow-up's flow: FOLLOW_UP_RETURNED questionnaires split over the fates in the
    reference wave's proportions, handed out at the shifted response rate."""
    return dataclasses.replace(scaled_plan(FOLLOW_UP_RETURNED, reference), response_rate=shifts.response_rate)


def generate_follow_up_wave(seed: int = FOLLOW_UP_SEED, wave: str = FOLLOW_UP_WAVE,
                            shifts: FollowUpShifts = FollowUpShifts(), state_dir: Path = STATE_DIR) -> Wave:
    """A SYNTHETIC follow-up of the reference wave's four schools (not calibrated to anything).

    960 questionnaires returned (FOLLOW_UP_RETURNED), about 1,070 handed out, with the
    reference wave's proportions of invalid and excluded questionnaires (every rule
    exercised); fieldwork 2021-11-01 to 2022-06-30. Every child is resampled from the
    calibrated state, keeping its age and grade (birth dates are drawn for the new survey
    dates), then shifted by `shifts`. The manifest states the exact flow and the analysed
    children's migration groups.
    """
    rng = np.random.default_rng(seed)
    state = load_state(state_dir)
    plan = follow_up_plan(reference_plan(state, published_flow()), shifts)
    codes = _Codes(load_codebook())
    pool = children_from_state(state, codes)
    weights = np.where(pool["group"] == codes.groups.index("mother"), shifts.mother_away_weight, 1.0)
    children = resample_children(pool, plan.returned, rng, weights)
    shift_children(children, shifts, codes, rng)
    generator = {"mode": "follow-up", "seed": seed, "state_sha256": state.sha256,
                 "shifts": dataclasses.asdict(shifts)}
    design = follow_up_design(shifts, wave, seed, codes)
    return build_wave(children, plan, 1, wave, None, generator, rng, design)


def write_wave(wave: Wave, out_dir: Path, fmt: str) -> list[Path]:
    """Write `questionnaires.<ext>`, `distribution.<ext>` and `wave.yaml` into `out_dir`."""
    from lbc_pipeline.synthetic import formats

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    return [
        formats.write_frame(wave.questionnaires, out_dir, "questionnaires", fmt),
        formats.write_frame(wave.distribution, out_dir, "distribution", fmt),
        formats.write_manifest(wave.manifest, out_dir),
    ]
