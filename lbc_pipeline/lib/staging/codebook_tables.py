"""The codebook as tables, so that SQL users can read what every variable, code and special
code means (in English and Chinese) next to the data of the wave it was applied to.

- staging.codebook_variables: one row per wave x file x variable as delivered.
- staging.codebook_values: one row per wave x coding x variable x value: the questionnaire's
  codes (`coding = 'questionnaire'`) and the analysis codings of the model variables
  (`coding = 'analysis'`: recoded variables, coded answers used as they are, migration groups).
- staging.codebook_special_codes: one row per wave x special code (and the empty cell).
"""

from __future__ import annotations

import polars as pl

from lbc_pipeline.codebook import load_codebook
from lbc_pipeline.lib import contracts

QUESTIONNAIRE, ANALYSIS = "questionnaire", "analysis"


def codebook_tables(wave: str) -> dict[str, pl.DataFrame]:
    """The three codebook tables of a wave, typed by their contracts."""
    book = load_codebook()
    variables = [
        {"wave": wave, "file": v.file, "variable": v.name, "position": i, "kind": v.kind, "group": v.group,
         "label_en": v.en, "label_zh": v.zh, "range_low": v.range[0] if v.range else None,
         "range_high": v.range[1] if v.range else None, "personal": v.personal}
        for f in ("distribution", "questionnaires")
        for i, v in enumerate(book.file_variables(f), start=1)
    ]
    values = [
        {"wave": wave, "coding": QUESTIONNAIRE, "variable": v.name, "value": str(code), "source_variable": v.name,
         "label_en": en, "label_zh": zh}
        for v in book.file_variables("questionnaires") for code, (en, zh) in v.codes.items()
    ]
    labelled = [c for c in contracts.ANALYTIC_COLUMNS if c in book.analysis_codings or _coded(book, c)]
    for name in labelled:
        source = book.analysis_codings[name][0] if name in book.analysis_codings else name
        values += [{"wave": wave, "coding": ANALYSIS, "variable": name, "value": str(code), "source_variable": source,
                    "label_en": en, "label_zh": zh} for code, (en, zh) in book.value_labels(name).items()]
    values += [{"wave": wave, "coding": ANALYSIS, "variable": "migration_group", "value": group,
                "source_variable": "parent_away", "label_en": en, "label_zh": zh}
               for group, (en, zh) in book.migration_group_labels.items()]
    special = [{"wave": wave, "code": s.code, "reason": s.reason, "label_en": s.en, "label_zh": s.zh}
               for s in book.special_codes]
    return {
        "staging.codebook_variables": contracts.frame("staging.codebook_variables", variables),
        "staging.codebook_values": contracts.frame("staging.codebook_values", values),
        "staging.codebook_special_codes": contracts.frame("staging.codebook_special_codes", special),
    }


def _coded(book, name: str) -> bool:
    try:
        return bool(book.variable(name).codes)
    except KeyError:
        return False
