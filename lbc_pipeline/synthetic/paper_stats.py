"""Statistics of Wang (2023) recomputed from an analysis-coded frame, for checking a calibration.

Small functions with no dependency on the pipeline (numpy, scipy, pandas only):

* `fit_ols`: OLS by least squares with conventional standard errors, t, p and R-squared;
* `cronbach_alpha`: the textbook formula k/(k-1) * (1 - sum of item variances / variance of total);
* `fit_teacher_factor` / `score_teacher_factor`: the one-factor regression-method score of the
  three head-teacher items (closed form for three indicators), standardised on the rows it
  was estimated on;
* `build_design_matrices`: the fourteen design matrices of Tables 2-4;
* `calibration_report` / `render_report`: how far a (synthetic) data set is from the
  published Tables 1-4 and Cronbach's alpha.

An *analysis-coded frame* has one row per analysed child and the columns of
`state/analysed_2019.csv`: `migration_group` (none/mother/father/both), `dep1`..`dep6` (1-5),
`girl`, `age`, `grade`, `siblings`, `korean`, `mother_edu`, `father_edu`, the school-support
items and `in_table1` (1 for the children printed Table 1 describes). An *excluded teacher
frame* has one row per excluded valid questionnaire that answered the three teacher items.

`python -m lbc_pipeline.synthetic.paper_stats` prints the report on the stored state.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from lbc_pipeline.config import REFERENCE_DIR
from scipy import stats

PUBLISHED_PATH = REFERENCE_DIR / "published_tables.json"
STATE_DIR = Path(__file__).resolve().parent / "state"
ANALYSED_FILE = "analysed_2019.csv"
EXCLUDED_TEACHER_FILE = "excluded_teacher_items_2019.csv"

GROUPS = ("none", "mother", "father", "both")
DUMMIES = ("mother_away", "father_away", "both_away")
CONTROLS = ("girl", "age", "grade", "siblings", "korean", "mother_edu", "father_edu")
MEASURES = (
    "belong",
    "teacher_attitude",
    "ht_satisfaction",
    "best_friends",
    "class_closeness",
    "peer_satisfaction",
)
DEPRESSION_ITEMS = tuple(f"dep{i}" for i in range(1, 7))
TEACHER_ITEMS = ("ht_ask_life", "ht_talk_guardian", "ht_praise")
TABLE1_CONTINUOUS = ("depression", "age", "teacher_attitude")
STAR_CUTS = ((0.001, "***"), (0.01, "**"), (0.05, "*"))


@dataclass(frozen=True)
class OlsFit:
    """One OLS fit: per-term coefficient, conventional SE, t and two-sided p (df = n - k)."""

    terms: tuple[str, ...]
    coef: np.ndarray
    se: np.ndarray
    t: np.ndarray
    p: np.ndarray
    r2: float
    n: int
    df_resid: int

    def term(self, name: str) -> dict[str, float | str]:
        """Return b, se, t, p and stars of one term."""
        k = self.terms.index(name)
        return {
            "b": float(self.coef[k]),
            "se": float(self.se[k]),
            "t": float(self.t[k]),
            "p": float(self.p[k]),
            "stars": stars_for(float(self.p[k])),
        }


@dataclass(frozen=True)
class ModelSpec:
    """A model of Tables 2-4: which support measure enters, interacted or not, centred or raw."""

    model_id: str
    measure: str | None
    interactions: bool
    centred: bool


@dataclass(frozen=True)
class FactorScoring:
    """One-factor regression-method scoring of three items, estimated on a set of rows.

    `item_means`/`item_sds` standardise the items (SD with ddof=1), `weights` = R^-1 loadings,
    and `score_mean`/`score_sd` standardise the raw score to mean 0, SD 1 on those rows.
    """

    loadings: np.ndarray
    weights: np.ndarray
    item_means: np.ndarray
    item_sds: np.ndarray
    score_mean: float
    score_sd: float


MODEL_SPECS: tuple[ModelSpec, ...] = (
    ModelSpec("2.1", None, False, False),
    ModelSpec("2.2", None, False, False),
    *(ModelSpec(f"3.{i + 1}", m, False, True) for i, m in enumerate(MEASURES)),
    *(ModelSpec(f"4.{i + 1}", m, True, m != "belong") for i, m in enumerate(MEASURES)),
)


def stars_for(p: float) -> str:
    """Return the paper's stars for a two-sided p-value (* 0.05, ** 0.01, *** 0.001)."""
    for cut, mark in STAR_CUTS:
        if p < cut:
            return mark
    return ""


def fit_ols(X: np.ndarray, y: np.ndarray, terms: tuple[str, ...]) -> OlsFit:
    """Fit y on the columns of X (X includes the constant) by least squares.

    SEs are the conventional ones, sqrt(diag(s^2 (X'X)^-1)) with s^2 = SSR / (n - k);
    R-squared is centred (1 - SSR / total sum of squares about the mean).
    """
    X = np.asarray(X, dtype=float)
    y = np.asarray(y, dtype=float)
    n, k = X.shape
    coef, *_ = np.linalg.lstsq(X, y, rcond=None)
    resid = y - X @ coef
    ssr = float(resid @ resid)
    df_resid = n - k
    cov = ssr / df_resid * np.linalg.inv(X.T @ X)
    se = np.sqrt(np.diag(cov))
    t = coef / se
    p = 2.0 * stats.t.sf(np.abs(t), df_resid)
    sst = float(((y - y.mean()) ** 2).sum())
    return OlsFit(tuple(terms), coef, se, t, p, 1.0 - ssr / sst, n, df_resid)


def cronbach_alpha(items: np.ndarray) -> float:
    """Cronbach's alpha of an (rows x items) matrix: k/(k-1) * (1 - sum var_i / var_total)."""
    items = np.asarray(items, dtype=float)
    k = items.shape[1]
    item_var = items.var(axis=0, ddof=1).sum()
    total_var = items.sum(axis=1).var(ddof=1)
    return k / (k - 1) * (1.0 - item_var / total_var)


def fit_teacher_factor(items: np.ndarray) -> FactorScoring:
    """Estimate the one-factor model of three items (rows x 3) and its score standardisation.

    Loadings are the exactly identified closed form l1 = sqrt(r12 r13 / r23) etc. from the
    Pearson correlations; regression weights w = R^-1 l.
    """
    items = np.asarray(items, dtype=float)
    r = np.corrcoef(items, rowvar=False)
    r12, r13, r23 = r[0, 1], r[0, 2], r[1, 2]
    loadings = np.sqrt(np.array([r12 * r13 / r23, r12 * r23 / r13, r13 * r23 / r12]))
    weights = np.linalg.solve(r, loadings)
    means = items.mean(axis=0)
    sds = items.std(axis=0, ddof=1)
    raw = ((items - means) / sds) @ weights
    return FactorScoring(loadings, weights, means, sds, float(raw.mean()), float(raw.std(ddof=1)))


def score_teacher_factor(items: np.ndarray, scoring: FactorScoring) -> np.ndarray:
    """Return the standardised factor score (teacher's attitude) of item rows (rows x 3)."""
    raw = ((np.asarray(items, dtype=float) - scoring.item_means) / scoring.item_sds) @ scoring.weights
    return (raw - scoring.score_mean) / scoring.score_sd


def add_derived_columns(analysed: pd.DataFrame, excluded_teacher: pd.DataFrame) -> pd.DataFrame:
    """Return a copy of the analysed frame with `depression`, `teacher_attitude` and the dummies.

    Teacher's attitude is estimated and standardised on the analysed plus excluded rows.
    """
    frame = analysed.copy()
    frame["depression"] = frame[list(DEPRESSION_ITEMS)].sum(axis=1)
    both = np.vstack([frame[list(TEACHER_ITEMS)].to_numpy(), excluded_teacher[list(TEACHER_ITEMS)].to_numpy()])
    scoring = fit_teacher_factor(both)
    frame["teacher_attitude"] = score_teacher_factor(frame[list(TEACHER_ITEMS)].to_numpy(), scoring)
    for dummy, group in zip(DUMMIES, GROUPS[1:]):
        frame[dummy] = (frame["migration_group"] == group).astype(float)
    return frame


def build_design_matrices(frame: pd.DataFrame) -> dict[str, tuple[pd.DataFrame, np.ndarray]]:
    """Return, per model id ("2.1" ... "4.6"), the design matrix (with `const`) and depression.

    `frame` must carry `depression`, `teacher_attitude` and the dummies (see
    `add_derived_columns`). Measures are mean-centred on the frame's rows except in Table 4
    Model 1, where belonging enters raw.
    """
    y = frame["depression"].to_numpy(dtype=float)
    out: dict[str, tuple[pd.DataFrame, np.ndarray]] = {}
    for spec in MODEL_SPECS:
        X = pd.DataFrame({"const": 1.0}, index=frame.index)
        for dummy in DUMMIES:
            X[dummy] = frame[dummy].astype(float)
        if spec.model_id != "2.1":
            for control in CONTROLS:
                X[control] = frame[control].astype(float)
        if spec.measure is not None:
            m = frame[spec.measure].astype(float)
            if spec.centred:
                m = m - m.mean()
            X[spec.measure] = m
            if spec.interactions:
                for dummy in DUMMIES:
                    X[f"{dummy}:{spec.measure}"] = X[dummy] * m
        out[spec.model_id] = (X, y)
    return out


def fit_paper_models(frame: pd.DataFrame) -> dict[str, OlsFit]:
    """Fit the fourteen models of Tables 2-4 on a frame prepared by `add_derived_columns`."""
    return {
        model_id: fit_ols(X.to_numpy(), y, tuple(X.columns))
        for model_id, (X, y) in build_design_matrices(frame).items()
    }


def load_published(path: Path = PUBLISHED_PATH) -> dict:
    """Read the published numbers (Tables 1-4, alpha) from the project's JSON transcription."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


def load_state(state_dir: Path = STATE_DIR) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read the stored synthetic state: (analysed frame, excluded teacher frame)."""
    state_dir = Path(state_dir)
    return pd.read_csv(state_dir / ANALYSED_FILE), pd.read_csv(state_dir / EXCLUDED_TEACHER_FILE)


def compare_models(fits: dict[str, OlsFit], published: dict) -> dict:
    """Compare fitted models with the published ones, per model and per table."""
    per_model = {}
    for model_id, pub in published["models"].items():
        fit = fits[model_id]
        terms = {}
        for name, ref in pub["coefs"].items():
            got = fit.term(name)
            terms[name] = {
                **got,
                "b_pub": ref["b"],
                "se_pub": ref["se"],
                "stars_pub": ref["stars"],
                "delta_se": (got["b"] - ref["b"]) / ref["se"],
                "se_ratio": got["se"] / ref["se"],
            }
        per_model[model_id] = {
            "r2": fit.r2,
            "r2_pub": pub["r2"],
            "r2_delta": fit.r2 - pub["r2"],
            "max_abs_delta_se": max(abs(t["delta_se"]) for t in terms.values()),
            "se_ratio_min": min(t["se_ratio"] for t in terms.values()),
            "se_ratio_max": max(t["se_ratio"] for t in terms.values()),
            "stars_agree": sum(t["stars"] == t["stars_pub"] for t in terms.values()),
            "stars_total": len(terms),
            "terms": terms,
        }
    per_table = {}
    for table in ("2", "3", "4"):
        models = [m for k, m in per_model.items() if k.startswith(table + ".")]
        per_table[table] = {
            "max_abs_delta_se": max(m["max_abs_delta_se"] for m in models),
            "se_ratio_min": min(m["se_ratio_min"] for m in models),
            "se_ratio_max": max(m["se_ratio_max"] for m in models),
            "max_abs_r2_delta": max(abs(m["r2_delta"]) for m in models),
            "stars_agree": sum(m["stars_agree"] for m in models),
            "stars_total": sum(m["stars_total"] for m in models),
        }
    return {"models": per_model, "tables": per_table}


def compare_table1(frame: pd.DataFrame, published: dict) -> dict:
    """Compare Table 1 with the frame's rows (all of them), per group.

    Returns the largest percentage-point difference of any category and the largest
    differences of the continuous means and SDs (ddof=1), with the worst cell of each.
    """
    t1 = published["table1"]
    worst = {"pct": (0.0, ""), "mean": (0.0, ""), "sd": (0.0, "")}

    def keep(kind: str, value: float, where: str) -> None:
        if abs(value) > abs(worst[kind][0]):
            worst[kind] = (value, where)

    for group in GROUPS:
        rows = frame[frame["migration_group"] == group]
        for var, block in t1["categorical"].items():
            codes = [c["code"] for c in block["categories"]]
            for code, pct_pub in zip(codes, block["pct"][group]):
                pct = 100.0 * float((rows[var] == code).mean())
                keep("pct", pct - pct_pub, f"{group}/{var}={code}")
        for var in TABLE1_CONTINUOUS:
            ref = t1["continuous"][var][group]
            keep("mean", float(rows[var].mean()) - ref["mean"], f"{group}/{var}")
            keep("sd", float(rows[var].std(ddof=1)) - ref["sd"], f"{group}/{var}")
    return {
        "n": int(len(frame)),
        "max_pct_diff": worst["pct"][0],
        "max_pct_diff_at": worst["pct"][1],
        "max_mean_diff": worst["mean"][0],
        "max_mean_diff_at": worst["mean"][1],
        "max_sd_diff": worst["sd"][0],
        "max_sd_diff_at": worst["sd"][1],
    }


def check_table1_printed(frame: pd.DataFrame, published: dict) -> dict:
    """Check the `in_table1` rows against Table 1 as printed.

    Counts: every category count per group equals `implied_counts`. Continuous: the number of
    group means/SDs that round to the printed three decimals (out of 24).
    """
    t1 = published["table1"]
    rows601 = frame[frame["in_table1"] == 1]
    count_mismatches = []
    printed_match = 0
    for group in GROUPS:
        rows = rows601[rows601["migration_group"] == group]
        implied = t1["implied_counts"][group]
        if len(rows) != implied["n"]:
            count_mismatches.append(f"{group}/n")
        for var, block in t1["categorical"].items():
            codes = [c["code"] for c in block["categories"]]
            got = [int((rows[var] == code).sum()) for code in codes]
            if got != implied["counts"][var]:
                count_mismatches.append(f"{group}/{var}")
        for var in TABLE1_CONTINUOUS:
            ref = t1["continuous"][var][group]
            printed_match += math.isclose(round(float(rows[var].mean()), 3), ref["mean"], abs_tol=1e-9)
            printed_match += math.isclose(round(float(rows[var].std(ddof=1)), 3), ref["sd"], abs_tol=1e-9)
    return {
        "n": int(len(rows601)),
        "count_mismatches": count_mismatches,
        "continuous_printed_match": printed_match,
        "continuous_printed_total": 2 * len(GROUPS) * len(TABLE1_CONTINUOUS),
    }


def check_plausibility(frame: pd.DataFrame) -> dict:
    """Return the correlations the calibration keeps plausible (on the frame's rows)."""
    corr = frame[list(CONTROLS) + list(MEASURES)].corr()
    pairs = [(a, b) for i, a in enumerate(MEASURES) for b in MEASURES[i + 1 :]]
    measure_corrs = [float(corr.loc[a, b]) for a, b in pairs]
    return {
        "age_grade": float(corr.loc["age", "grade"]),
        "mother_father_edu": float(corr.loc["mother_edu", "father_edu"]),
        "measures_min": min(measure_corrs),
        "measures_max": max(measure_corrs),
    }


def calibration_report(analysed: pd.DataFrame, excluded_teacher: pd.DataFrame, published: dict) -> dict:
    """Compare an analysis-coded data set with the published Tables 1-4 and alpha.

    `analysed`: one row per analysed child (605 in the reference wave); `excluded_teacher`:
    the teacher items of the excluded valid questionnaires that answered all three (used
    only to estimate and standardise teacher's attitude).
    """
    frame = add_derived_columns(analysed, excluded_teacher)
    models = compare_models(fit_paper_models(frame), published)
    overall = {
        "max_abs_delta_se": max(t["max_abs_delta_se"] for t in models["tables"].values()),
        "se_ratio_min": min(t["se_ratio_min"] for t in models["tables"].values()),
        "se_ratio_max": max(t["se_ratio_max"] for t in models["tables"].values()),
        "stars_agree": sum(t["stars_agree"] for t in models["tables"].values()),
        "stars_total": sum(t["stars_total"] for t in models["tables"].values()),
        "max_abs_r2_delta_except_4_1": max(
            abs(m["r2_delta"]) for k, m in models["models"].items() if k != "4.1"
        ),
        "r2_delta_4_1": models["models"]["4.1"]["r2_delta"],
    }
    alpha = cronbach_alpha(frame[list(DEPRESSION_ITEMS)].to_numpy())
    return {
        "n_analysed": int(len(frame)),
        "n_teacher_rows": int(len(frame) + len(excluded_teacher)),
        "overall": overall,
        "tables": models["tables"],
        "models": models["models"],
        "table1_605": compare_table1(frame, published),
        "table1_printed": check_table1_printed(frame, published),
        "alpha": {"value": alpha, "published": published["cronbach_alpha_depression"]},
        "teacher_attitude_mean_605": float(frame["teacher_attitude"].mean()),
        "plausibility": check_plausibility(frame),
    }


def render_report(report: dict) -> str:
    """Render a calibration report as plain text."""
    o = report["overall"]
    lines = [
        f"Calibration report: {report['n_analysed']} analysed children, "
        f"teacher factor on {report['n_teacher_rows']} rows",
        "",
        "table  max|delta|/SE  SE ratio range     max|dR2|  stars",
    ]
    for table, t in report["tables"].items():
        lines.append(
            f"  {table}    {t['max_abs_delta_se']:.4f}         {t['se_ratio_min']:.4f}-{t['se_ratio_max']:.4f}"
            f"    {t['max_abs_r2_delta']:.4f}    {t['stars_agree']}/{t['stars_total']}"
        )
    lines += [
        f"  all  {o['max_abs_delta_se']:.4f}         {o['se_ratio_min']:.4f}-{o['se_ratio_max']:.4f}"
        f"    stars {o['stars_agree']}/{o['stars_total']}",
        f"  max|dR2| except Table 4 Model 1: {o['max_abs_r2_delta_except_4_1']:.4f}; "
        f"Table 4 Model 1: {o['r2_delta_4_1']:+.4f} (printed 0.157 contradicts its t-values)",
        "",
        "model   R2 (pub)         max|delta|/SE  SE ratio range  stars",
    ]
    for model_id, m in report["models"].items():
        lines.append(
            f"  {model_id}   {m['r2']:.4f} ({m['r2_pub']:.3f})  {m['max_abs_delta_se']:.4f}         "
            f"{m['se_ratio_min']:.4f}-{m['se_ratio_max']:.4f}   {m['stars_agree']}/{m['stars_total']}"
        )
    t1 = report["table1_605"]
    tp = report["table1_printed"]
    pl = report["plausibility"]
    lines += [
        "",
        f"Table 1 on all {t1['n']}: max pct diff {t1['max_pct_diff']:+.3f} ({t1['max_pct_diff_at']}), "
        f"max mean diff {t1['max_mean_diff']:+.4f} ({t1['max_mean_diff_at']}), "
        f"max SD diff {t1['max_sd_diff']:+.4f} ({t1['max_sd_diff_at']})",
        f"Table 1 on the {tp['n']} in_table1 rows: count mismatches {tp['count_mismatches'] or 'none'}; "
        f"means/SDs matching the printed decimals {tp['continuous_printed_match']}/{tp['continuous_printed_total']}",
        f"Cronbach's alpha: {report['alpha']['value']:.5f} (published {report['alpha']['published']})",
        f"Teacher's attitude mean on the analysed rows: {report['teacher_attitude_mean_605']:+.4f}",
        f"Plausibility: corr(age, grade) {pl['age_grade']:.3f}, corr(mother_edu, father_edu) "
        f"{pl['mother_father_edu']:.3f}, support measures inter-correlations "
        f"{pl['measures_min']:.3f}-{pl['measures_max']:.3f}",
    ]
    return "\n".join(lines)


def main() -> None:
    """Print the calibration report of the stored state."""
    analysed, excluded = load_state()
    print(render_report(calibration_report(analysed, excluded, load_published())))


if __name__ == "__main__":
    main()
