"""Hand-made rows and small waves written to a folder, shared by every test module.

`valid_row()` is one analysable child in raw codes; each rule's test changes the few cells
it is about, so a failure points at that rule and nothing else.
"""

import datetime as dt
from pathlib import Path

import numpy as np
import polars as pl
import yaml

from lbc_pipeline.codebook import load_codebook

FIELDWORK = {"start": dt.date(2019, 11, 1), "end": dt.date(2020, 6, 30)}


def valid_row(qid: str = "Q0001", **overrides: str | None) -> dict[str, str | None]:
    """One returned questionnaire of an analysable child, as data entry keys it (text)."""
    row = {
        "qid": qid, "school_id": "S2", "class_id": "7-1", "survey_date": "2019-12-10",
        "student_name": "金哲", "student_no": "2019070101",
        "gender": "2", "birth_year": "2006", "birth_month": "5", "grade": "7", "siblings": "1",
        "ethnicity": "2", "mother_edu": "5", "father_edu": "3",
        "mother_alive": "1", "father_alive": "1", "parents_marital": "1", "custody": "-7",
        "parent_away": "1", "mother_away_dur": "4", "father_away_dur": "1",
        "mother_dest": "3", "father_dest": "-7",
        "dep1": "2", "dep2": "1", "dep3": "3", "dep4": "2", "dep5": "1", "dep6": "2",
        "belong": "4", "ht_ask_life": "2", "ht_talk_guardian": "3", "ht_praise": "2",
        "ht_satisfaction": "4", "best_friends": "3", "class_closeness": "4", "peer_satisfaction": "5",
    }
    unknown = set(overrides) - set(row)
    assert not unknown, f"not questionnaire variables: {unknown}"
    row.update(overrides)
    return row


def varied_rows(n: int, seed: int = 7, prefix: str = "Q") -> list[dict]:
    """`n` analysable children whose answers vary (the factor model needs variance)."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        common = rng.normal()
        teacher = [str(int(np.clip(round(2.5 + 0.9 * common + rng.normal(0, 0.6)), 1, 4))) for _ in range(3)]
        dep = [str(int(np.clip(round(2.2 - 0.6 * common + rng.normal(0, 0.6)), 1, 5))) for _ in range(6)]
        group = rng.choice(["none", "mother", "father", "both"], p=[0.5, 0.15, 0.2, 0.15])
        grade = int(rng.choice([7, 8, 9]))
        q1, mdur, fdur = {"none": ("2", "-7", "-7"), "mother": ("1", "4", "1"),
                          "father": ("1", "1", "5"), "both": ("1", "3", "4")}[group]
        rows.append(valid_row(
            f"{prefix}{i:04d}", gender=str(rng.integers(1, 3)), ethnicity=str(rng.integers(1, 3)),
            parent_away=q1, mother_away_dur=mdur, father_away_dur=fdur,
            mother_dest="3" if mdur in ("3", "4", "5") else "-7",
            father_dest="2" if fdur in ("3", "4", "5") else "-7",
            ht_ask_life=teacher[0], ht_talk_guardian=teacher[1], ht_praise=teacher[2],
            dep1=dep[0], dep2=dep[1], dep3=dep[2], dep4=dep[3], dep5=dep[4], dep6=dep[5],
            belong=str(rng.integers(3, 6)), siblings=str(rng.integers(0, 4)),
            school_id=str(rng.choice(["S2", "S3"])), grade=str(grade),
            birth_year=str(2019 - grade - 5 - int(rng.integers(0, 2))), birth_month=str(rng.integers(1, 13)),
            mother_edu=str(rng.integers(1, 9)), father_edu=str(rng.integers(1, 9)),
            ht_satisfaction=str(rng.integers(2, 6)), best_friends=str(rng.integers(1, 5)),
            class_closeness=str(rng.integers(2, 6)), peer_satisfaction=str(rng.integers(2, 6)),
        ))
    return rows


DISTRIBUTION = [
    {"school_id": "S1", "school_name": "第一朝鲜族小学", "school_type": "1", "school_level": "1", "distributed": "40"},
    {"school_id": "S2", "school_name": "第二朝鲜族中学", "school_type": "1", "school_level": "2", "distributed": "60"},
    {"school_id": "S3", "school_name": "第三中学", "school_type": "2", "school_level": "2", "distributed": "60"},
]


def write_wave(folder: Path, rows: list[dict], wave: str = "test", distribution: list[dict] | None = None,
               manifest: dict | None = None, fmt: str = "csv") -> Path:
    """Write a wave folder (questionnaires, distribution, wave.yaml) and return it."""
    folder.mkdir(parents=True, exist_ok=True)
    columns = [v.name for v in load_codebook().file_variables("questionnaires")]
    frame = pl.DataFrame(rows, schema={c: pl.String for c in columns}).select(columns)
    dist = pl.DataFrame(distribution or DISTRIBUTION, schema={c: pl.String for c in (distribution or DISTRIBUTION)[0]})
    if fmt == "csv":
        frame.write_csv(folder / "questionnaires.csv")
    elif fmt == "parquet":
        frame.write_parquet(folder / "questionnaires.parquet")
    dist.write_csv(folder / "distribution.csv")
    doc = manifest if manifest is not None else {"wave": wave, "fieldwork": FIELDWORK}
    if doc:
        (folder / "wave.yaml").write_text(yaml.safe_dump(doc, allow_unicode=True))
    return folder
