-- Does each claim survive? The main mother-away effect and H1-H3 under every analysis,
-- and (beside the as-published row) where the mother-away effect on depression is
-- significant along the decisive support measure (Johnson-Neyman, conventional SEs).
with matrix as (
    select wave, hypothesis, analysis, measure, estimate, p_value, verdict, agrees_with_published
    from marts.robustness
),

regions as (
    select wave, model_no, moderator, low, high, share_children
    from marts.johnson_neyman
    where migration_group = 'mother' and se_type = 'nonrobust' and significant
),

final as (
    select m.*, r.moderator, r.low, r.high, r.share_children
    from matrix as m
    left join regions as r
        on r.wave = m.wave and r.moderator = m.measure and m.analysis = 'as_published'
)

select * from final
order by wave, hypothesis, analysis, low;
