-- The joint display: each hypothesis's survey verdict beside the interview evidence, with
-- the agreement label and its example excerpts (redacted), one row per example.
with verdicts as (
    select wave, hypothesis, topic, survey_finding, n_informants_supports, n_informants_qualifies,
           n_informants_contradicts, agreement, agreement_note
    from marts.triangulation
),

examples as (
    select wave, hypothesis, rank, stance, informant_code, citation, excerpt
    from marts.triangulation_examples
),

final as (
    select v.*, e.rank, e.stance, e.informant_code, e.citation, e.excerpt
    from verdicts v
    left join examples e using (wave, hypothesis)
    order by v.wave, v.hypothesis, e.rank
)

select * from final;
