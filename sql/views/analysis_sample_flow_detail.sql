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
order by wave, step_order, n_primary desc nulls last
