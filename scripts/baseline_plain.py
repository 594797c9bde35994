"""The benchmark baseline: the paper's analysis as a researcher would script it.

Plain pandas + statsmodels, no project code: reads the two files of one wave
(`questionnaires.csv|parquet`, `distribution.csv|parquet`, and `wave.yaml` for the fieldwork
window when there is one), applies the instrument's rules (shared/spec/instrument.md:
duplicates, special codes, ranges, the invalid rules, deceased parents, the migration group
with its 6-month and custody rules, missing model variables), scores teacher's attitude
(one-factor ML EFA, regression method, standardised on the valid questionnaires that
answered the three items) and fits the fourteen published models (Tables 2-4, `as_published`
coding) with conventional, HC3 and school-clustered standard errors.

It is what the pipeline is benchmarked against (scripts/benchmark.py) and it is checked to
give the pipeline's estimates (lbc_pipeline_tests/scripts/test_baseline_plain.py).

    python scripts/baseline_plain.py data/raw/2019 [--out coefficients.csv]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import statsmodels.api as sm
import yaml
from statsmodels.multivariate.factor import Factor

# ---- instrument.md section 2, copied by hand: valid codes of every substantive item
SPECIAL = [-9, -8, -7]  # refused, don't know, not applicable
CODES = {
    "gender": range(1, 3), "birth_year": range(1990, 2026), "birth_month": range(1, 13),
    "grade": range(1, 13), "siblings": range(0, 21), "ethnicity": range(1, 4),
    "mother_edu": range(1, 9), "father_edu": range(1, 9),
    "mother_alive": range(1, 3), "father_alive": range(1, 3), "parents_marital": range(1, 4),
    "custody": range(1, 4), "parent_away": range(1, 3),
    "mother_away_dur": range(1, 6), "father_away_dur": range(1, 6),
    "mother_dest": range(1, 5), "father_dest": range(1, 5),
    **{f"dep{i}": range(1, 6) for i in range(1, 7)},
    "belong": range(1, 6), "ht_ask_life": range(1, 5), "ht_talk_guardian": range(1, 5),
    "ht_praise": range(1, 5), "ht_satisfaction": range(1, 6), "best_friends": range(1, 5),
    "class_closeness": range(1, 6), "peer_satisfaction": range(1, 6),
}
SUBSTANTIVE = list(CODES)  # the 31 items that count towards "largely blank"
DEP = [f"dep{i}" for i in range(1, 7)]
TEACHER = ["ht_ask_life", "ht_talk_guardian", "ht_praise"]
EDUCATION = {1: 1, 2: 1, 3: 1, 4: 2, 5: 2, 6: 3, 7: 3, 8: 3}
MODEL_VARIABLES = [
    "depression", "migration_group", "girl", "age", "grade", "siblings", "korean",
    "mother_edu", "father_edu", "belong", *TEACHER, "ht_satisfaction", "best_friends",
    "class_closeness", "peer_satisfaction",
]
DUMMIES = {"mother_away": "mother", "father_away": "father", "both_away": "both"}
CONTROLS = ["girl", "age", "grade", "siblings", "korean", "mother_edu", "father_edu"]
MEASURES = ["belong", "teacher_attitude", "ht_satisfaction", "best_friends", "class_closeness",
            "peer_satisfaction"]
FACTOR_SEED = 20230113  # the ML factor fit starts from random values: seed it


def read_file(folder: Path, stem: str) -> pd.DataFrame:
    """One raw file as text (cells stripped, empty cells missing), whatever its format."""
    path = next(p for p in sorted(folder.glob(f"{stem}.*")) if p.suffix in (".csv", ".parquet"))
    if path.suffix == ".csv":
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    else:
        frame = pd.read_parquet(path)
        for column in frame.columns:
            numeric = frame[column].dtype.kind in "if"
            frame[column] = frame[column].astype("Int64" if numeric else object).astype(str)
            frame.loc[frame[column].isin(["<NA>", "None", "nan"]), column] = ""
    frame.columns = [c.strip().lower() for c in frame.columns]
    for column in frame.columns:
        frame[column] = frame[column].str.strip()
    frame = frame.replace("", np.nan)
    return frame.dropna(how="all")


def fieldwork_window(folder: Path) -> tuple[pd.Timestamp, pd.Timestamp] | None:
    manifest = folder / "wave.yaml"
    if not manifest.exists():
        return None
    window = (yaml.safe_load(manifest.read_text()) or {}).get("fieldwork")
    return (pd.Timestamp(window["start"]), pd.Timestamp(window["end"])) if window else None


def prepare(raw: pd.DataFrame, schools: pd.Series, fieldwork) -> pd.DataFrame:
    """One row per returned questionnaire: analysis codings and its status."""
    # keying duplicates: identical rows collapse; a qid keyed with different answers is invalid
    deduped = raw.drop_duplicates()
    conflicting = deduped["qid"][deduped["qid"].duplicated(keep=False)].unique()
    q = deduped.drop_duplicates("qid").set_index("qid")

    # special codes and out-of-range codes become missing; empty or refused items are blank
    value = pd.DataFrame(index=q.index)
    blank = pd.Series(0, index=q.index)
    for item, valid in CODES.items():
        number = pd.to_numeric(q[item], errors="coerce")
        blank += q[item].isna() | (number == -9)
        value[item] = number.where(number.isin(list(valid)))
    date = pd.to_datetime(q["survey_date"], format="%Y-%m-%d", errors="coerce")

    # age in completed years at the survey date, birthday on the 15th
    before_birthday = (date.dt.month < value["birth_month"]) | (
        (date.dt.month == value["birth_month"]) & (date.dt.day < 15))
    age = date.dt.year - value["birth_year"] - before_birthday.astype(float)
    age[value["birth_year"].isna() | value["birth_month"].isna() | date.isna() | (age < 0)] = np.nan

    invalid = (
        q.index.isin(conflicting)
        | (age.notna() & ~age.between(9, 15))
        | (value["grade"].notna() & ~value["grade"].isin([5, 7, 8, 9]))
        | (blank >= 16)
        | ~q["school_id"].isin(schools)
    )
    if fieldwork is not None:
        invalid |= date.notna() & ((date < fieldwork[0]) | (date > fieldwork[1]))

    # parental migration: away = Q1 yes and 6 months or more; custody rule for divorced parents
    q1, m_dur, f_dur = value["parent_away"], value["mother_away_dur"], value["father_away_dur"]
    m_long, f_long = m_dur >= 3, f_dur >= 3
    divorced = value["parents_marital"] == 2
    m_away = (q1 == 1) & m_long & ~(divorced & (value["custody"] == 2))
    f_away = (q1 == 1) & f_long & ~(divorced & (value["custody"] == 1))
    group = pd.Series(np.select([m_away & f_away, m_away, f_away], ["both", "mother", "father"], "none"),
                      index=q.index, dtype=object)
    group[q1.isna() | ((q1 == 2) & (m_long | f_long)) | ((q1 == 1) & (m_dur.isna() | f_dur.isna()))] = None

    out = pd.DataFrame({
        "school_id": q["school_id"],
        "depression": value[DEP].sum(axis=1, min_count=6),
        "migration_group": group,
        "girl": (value["gender"] == 2).astype(float).where(value["gender"].notna()),
        "age": age,
        "grade": value["grade"],
        "siblings": value["siblings"].clip(upper=2),
        "korean": (value["ethnicity"] == 2).astype(float).where(value["ethnicity"].notna()),
        "mother_edu": value["mother_edu"].map(EDUCATION),
        "father_edu": value["father_edu"].map(EDUCATION),
        **{item: value[item] for item in ["belong", *TEACHER, *MEASURES[2:]]},
    })
    out["valid"] = ~invalid
    deceased = (value["mother_alive"] == 2) | (value["father_alive"] == 2)
    out["analysed"] = out["valid"] & ~deceased & out[MODEL_VARIABLES].notna().all(axis=1)
    return out.sort_index()


def teacher_attitude(returned: pd.DataFrame) -> pd.Series:
    """One-factor ML EFA of the three head-teacher items on the valid questionnaires that
    answered them; regression-method scores standardised (ddof=1) on those rows."""
    items = returned.loc[returned["valid"], TEACHER].dropna().to_numpy(float)
    loadings = np.asarray(Factor(items, n_factor=1, method="ml").fit(rng=FACTOR_SEED).loadings).ravel()
    loadings = -loadings if loadings.sum() < 0 else loadings
    weights = np.linalg.solve(np.corrcoef(items, rowvar=False), loadings)
    means, sds = items.mean(axis=0), items.std(axis=0, ddof=1)
    estimation = ((items - means) / sds) @ weights
    answered = returned[TEACHER].notna().all(axis=1)
    score = ((returned.loc[answered, TEACHER].to_numpy(float) - means) / sds) @ weights
    return pd.Series((score - estimation.mean()) / estimation.std(ddof=1), index=returned.index[answered])


def design(sample: pd.DataFrame, table: int, model: int) -> pd.DataFrame:
    """Tables 2-4: belonging raw in Table 4 Model 1, every other measure centred."""
    X = pd.DataFrame({d: (sample["migration_group"] == g).astype(float) for d, g in DUMMIES.items()})
    if (table, model) != (2, 1):
        for control in CONTROLS:
            X[control] = sample[control].astype(float)
    if table in (3, 4):
        measure = MEASURES[model - 1]
        m = sample[measure] if (table, model) == (4, 1) else sample[measure] - sample[measure].mean()
        X[measure] = m
        if table == 4:
            for dummy in DUMMIES:
                X[f"{dummy}:{measure}"] = X[dummy] * m
    X["const"] = 1.0
    return X


def fit_models(sample: pd.DataFrame) -> pd.DataFrame:
    """The fourteen models, one row per model x term x SE type."""
    schools = pd.factorize(sample["school_id"], sort=True)[0]
    rows = []
    models = [(2, 1), (2, 2)] + [(t, m) for t in (3, 4) for m in range(1, 7)]
    for table, model in models:
        X = design(sample, table, model)
        ols = sm.OLS(sample["depression"].astype(float), X).fit()
        for se_type, result in (("nonrobust", ols),
                                ("HC3", ols.get_robustcov_results("HC3", use_t=True)),
                                ("cluster_school", ols.get_robustcov_results("cluster", groups=schools, use_t=True))):
            for j, term in enumerate(X.columns):
                rows.append({"table_no": table, "model_no": model, "term": term, "se_type": se_type,
                             "estimate": np.asarray(result.params)[j], "std_error": np.asarray(result.bse)[j],
                             "p_value": np.asarray(result.pvalues)[j], "n_obs": int(ols.nobs),
                             "r_squared": ols.rsquared})
    return pd.DataFrame(rows)


def run(folder: Path) -> tuple[pd.DataFrame, dict]:
    """The models' coefficients and the sample flow counts of one wave folder."""
    distribution = read_file(folder, "distribution")
    returned = prepare(read_file(folder, "questionnaires"), distribution["school_id"], fieldwork_window(folder))
    returned["teacher_attitude"] = teacher_attitude(returned)
    sample = returned[returned["analysed"]]
    counts = {"distributed": int(pd.to_numeric(distribution["distributed"]).sum()), "returned": len(returned),
              "valid": int(returned["valid"].sum()), "analysed": len(sample)}
    return fit_models(sample), counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("wave_folder", type=Path)
    parser.add_argument("--out", type=Path, help="write the coefficients here (csv)")
    args = parser.parse_args(argv)
    coefficients, counts = run(args.wave_folder)
    print(", ".join(f"{k} {v}" for k, v in counts.items()))
    if args.out:
        coefficients.to_csv(args.out, index=False, float_format="%.17g")
    print(coefficients[coefficients["se_type"] == "nonrobust"].pivot_table(
        index="term", columns=["table_no", "model_no"], values="estimate").round(3).to_string())
    return 0


if __name__ == "__main__":
    sys.exit(main())
