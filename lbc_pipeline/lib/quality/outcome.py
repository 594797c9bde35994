"""What a data-quality rule returns, and the thresholds it is given: plain data, importable
without polars (the Dagster Definitions load this module; the rules are in `rules.py`).

Severities: `ERROR` blocks the downstream assets, `WARN` reports.
"""

from __future__ import annotations

from dataclasses import dataclass, field

ERROR, WARN = "ERROR", "WARN"


@dataclass(frozen=True)
class QualitySettings:
    """Thresholds of the WARN-level rules (a run's configuration may change them)."""

    max_exclusion_share: float = 0.10  # of valid questionnaires, per missing_<variable> reason
    attrition_alpha: float = 0.05  # p-value under which excluded and analysed children differ
    min_group_size: int = 20  # smallest migration group the models should rest on


@dataclass(frozen=True)
class Outcome:
    passed: bool
    severity: str
    description: str
    metadata: dict = field(default_factory=dict)
