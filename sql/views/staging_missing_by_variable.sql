-- staging.missing_by_variable: how often each variable is missing, and why.
-- Grain: wave x variable x reason; share over the wave's returned questionnaires.
create or replace view staging.missing_by_variable as
with returned as (
    select wave, count(*) as n_returned
    from staging.questionnaires
    group by wave
),

missing as (
    select wave, variable, reason, count(*) as n_missing
    from staging.missing_values
    group by wave, variable, reason
),

final as (
    select
        missing.wave,
        missing.variable,
        missing.reason,
        missing.n_missing,
        round(missing.n_missing / returned.n_returned, 4) as share_of_returned
    from missing
    inner join returned on returned.wave = missing.wave
)

select * from final
order by wave, n_missing desc, variable
