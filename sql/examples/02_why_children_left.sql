-- Why questionnaires left the sample, by primary reason (the reasons add up to the flow).
with exclusions as (
    select wave, stage, primary_reason
    from analysis.exclusions
),

final as (
    select wave, stage, primary_reason, count(*) as n
    from exclusions
    group by wave, stage, primary_reason
)

select * from final
order by wave, stage desc, n desc;
