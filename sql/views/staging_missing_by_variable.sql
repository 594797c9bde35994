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
order by wave, n_missing desc, variable;

comment on view staging.missing_by_variable is 'One row per wave x variable x reason: how often a value is missing and why, over returned questionnaires';
comment on column staging.missing_by_variable.wave is 'Wave identifier';
comment on column staging.missing_by_variable.variable is 'Questionnaire variable';
comment on column staging.missing_by_variable.reason is 'not_answered, refused, dont_know, not_applicable, out_of_range, unparseable';
comment on column staging.missing_by_variable.n_missing is 'Returned questionnaires with this variable missing for this reason';
comment on column staging.missing_by_variable.share_of_returned is 'n_missing / returned questionnaires of the wave';
