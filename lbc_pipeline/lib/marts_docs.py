"""Grain and column descriptions of the marts, written into DuckDB as comments."""

WAVE = "Wave identifier (the partition key, e.g. '2019')"
_MODEL = {
    "wave": WAVE,
    "specification": "as_published (the paper's coding: moderator raw in Table 4 Model 1, centred elsewhere) or harmonised (every moderator mean-centred)",
    "table_no": "The paper's table: 2, 3 or 4",
    "model_no": "The model's number within its table",
}

_POOLED = {
    "wave": "'pooled': rows computed on every wave together", "waves": "The waves pooled, comma-separated",
    "specification": _MODEL["specification"], "table_no": _MODEL["table_no"], "model_no": _MODEL["model_no"],
    "n_obs": "Children in the pooled model",
}

MARTS_DOCS: dict[str, tuple[str, dict[str, str]]] = {
    "marts.pooled_coefficients": (
        "One row per specification x model x term x SE type: the paper's models on all waves stacked, with wave fixed effects",
        {**_POOLED, "term": "Term as in marts.model_coefficients, plus wave_<id> fixed effects (the first wave is the reference)",
         "estimate": "OLS coefficient", "std_error": "Standard error of the given se_type", "t_value": "estimate / std_error",
         "p_value": "Two-sided p-value", "ci_low": "Lower bound of the 95% confidence interval",
         "ci_high": "Upper bound of the 95% confidence interval", "stars": "*** p < 0.001, ** p < 0.01, * p < 0.05",
         "se_type": "nonrobust or HC3 (no cluster SEs: too few schools)",
         "note": "Fixed effects used, reference wave, centring of the moderator on the pooled sample"}),
    "marts.pooled_fit": (
        "One row per specification x model: fit of the pooled model",
        {**_POOLED, "n_waves": "Waves pooled", "r_squared": "R-squared", "adj_r_squared": "Adjusted R-squared",
         "f_stat": "F statistic (wave dummies included)", "f_p_value": "p-value of the F statistic"}),
    "marts.wave_comparison": (
        "One row per wave x kind x measure x statistic, beside the same number of the previous wave",
        {"wave": WAVE, "previous_wave": "The wave before (sorted ids); null for the first",
         "kind": "group_size, share, mean, alpha or coefficient", "measure": "Group, measure or model term",
         "statistic": "n, share, mean, sd, cronbach_alpha, or the model label for coefficients",
         "value": "This wave's number", "previous_value": "The previous wave's number", "delta": "value - previous_value",
         "relative_change": "delta / |previous_value| (null when it is 0)", "std_error": "Coefficient standard error (coefficients only)",
         "previous_std_error": "The previous wave's standard error", "z_change": "delta / sqrt(se^2 + previous se^2) (coefficients only)"}),
    "marts.model_coefficients": (
        "One row per wave x specification x model x term x SE type: OLS estimates of the depression score",
        {**_MODEL,
         "term": "Term: const, mother_away, father_away, both_away, the controls, the moderator, or an interaction such as mother_away:belong",
         "estimate": "OLS coefficient", "std_error": "Standard error of the given se_type",
         "t_value": "estimate / std_error", "p_value": "Two-sided p-value (t with n - k df; normal for cluster_school as statsmodels reports it)",
         "ci_low": "Lower bound of the 95% confidence interval", "ci_high": "Upper bound of the 95% confidence interval",
         "stars": "*** p < 0.001, ** p < 0.01, * p < 0.05", "se_type": "nonrobust (the paper's), HC3, or cluster_school",
         "wild_bootstrap_p": "cluster_school rows: wild cluster bootstrap p-value (Rademacher weights, null imposed); null otherwise",
         "note": "What to keep in mind about this SE type (e.g. only four schools: cluster-robust SEs are unreliable)"}),
    "marts.model_fit": (
        "One row per wave x specification x model: fit statistics",
        {**_MODEL, "n_obs": "Children in the model", "r_squared": "R-squared", "adj_r_squared": "Adjusted R-squared",
         "f_stat": "F statistic of the model against the constant only", "f_p_value": "p-value of the F statistic",
         "moderator": "School-support measure of Tables 3-4 (null in Table 2)",
         "centred": "Whether the moderator is mean-centred on the analysis sample"}),
    "marts.table1": (
        "One row per wave x variable x level x migration group x statistic: the paper's Table 1 on the analysis sample",
        {"wave": WAVE, "variable": "Variable (observations = group sizes)", "level": "Category code as text (null for continuous variables)",
         "migration_group": "none, mother, father, both, or all", "statistic": "mean, sd (ddof=1), percent or n",
         "value": "The statistic's value"}),
    "marts.replication": (
        "One row per wave x published number of Tables 2-4 (coefficients, R-squared, N): ours beside the paper's",
        {"wave": WAVE, "table_no": "The paper's table", "model_no": "The model within the table",
         "term": "Coefficient term, or r_squared / n_obs", "published_estimate": "As printed in Wang (2023)",
         "published_se": "Standard error as printed (null for r_squared and n_obs)", "published_stars": "Stars as printed",
         "estimate": "Our estimate (as_published specification, conventional SEs)", "std_error": "Our standard error",
         "stars": "Our stars", "delta": "estimate - published_estimate", "delta_in_se": "delta / published_se",
         "se_ratio": "std_error / published_se", "stars_match": "Our stars equal the printed ones",
         "within_tolerance": "Within the replication tolerance (coefficient 0.05 SE and SE 3%; R-squared 0.002, Table 4 Model 1 0.01; N exact)"}),
    "marts.hypotheses": (
        "One row per wave x hypothesis x school-support measure: the buffering interaction and the verdict",
        {"wave": WAVE, "hypothesis": "H1 school belonging, H2 teacher-student relationships, H3 peer support",
         "measure": "The school-support measure", "term": "The mother-away interaction term tested",
         "table_no": "Table of the model (4)", "model_no": "Model within Table 4",
         "estimate": "Interaction estimate", "std_error": "Its conventional standard error", "p_value": "Its p-value",
         "buffering": "Negative and p < 0.05: the measure buffers the mother-away effect",
         "supported": "The hypothesis is supported: at least one of its measures buffers",
         "sentence": "What the numbers say, generated from them"}),
}
