-- analysis.sample_flow_detail: one row per step and reason, the flow users read first.
-- Grain: wave x step x reason. Every step's n_primary rows add up to its n_excluded.
create or replace view analysis.sample_flow_detail as
with flow as (
    select wave, step_order, step, n_before, n_excluded, n_after
    from analysis.sample_flow
),

reasons as (
    select wave, step, reason, reason_order, n_primary, n_any
    from analysis.sample_flow_reasons
    where n_any > 0
),

final as (
    select
        flow.wave,
        flow.step_order,
        flow.step,
        flow.n_before,
        flow.n_excluded,
        flow.n_after,
        reasons.reason,
        reasons.n_primary,
        reasons.n_any
    from flow
    left join reasons
        on reasons.wave = flow.wave and reasons.step = flow.step
)

select * from final
order by wave, step_order, n_primary desc nulls last;

comment on view analysis.sample_flow_detail is 'One row per wave x step x reason: the sample flow with the count of each reason (primary and any position)';
comment on column analysis.sample_flow_detail.wave is 'Wave identifier';
comment on column analysis.sample_flow_detail.step_order is 'Order of the step (1 = handed out)';
comment on column analysis.sample_flow_detail.step is 'distributed, returned, valid, parents_alive, analysed';
comment on column analysis.sample_flow_detail.n_before is 'Questionnaires before the step';
comment on column analysis.sample_flow_detail.n_excluded is 'Questionnaires that left at this step';
comment on column analysis.sample_flow_detail.n_after is 'Questionnaires after the step';
comment on column analysis.sample_flow_detail.reason is 'A reason for leaving at this step (null for distributed)';
comment on column analysis.sample_flow_detail.n_primary is 'Questionnaires whose primary reason this is (they add up to n_excluded)';
comment on column analysis.sample_flow_detail.n_any is 'Questionnaires for which the reason applies at all';
