-- marts.replication_summary: how close each table comes to the published numbers.
-- Grain: wave x table. Coefficient rows only (terms other than r_squared and n_obs).
create or replace view marts.replication_summary as
with coefficients as (
    select *
    from marts.replication
    where term not in ('r_squared', 'n_obs')
),

r_squared as (
    select wave, table_no, max(abs(delta)) as max_abs_r2_delta
    from marts.replication
    where term = 'r_squared'
    group by wave, table_no
),

per_table as (
    select
        wave,
        table_no,
        count(*) as n_coefficients,
        max(abs(delta_in_se)) as max_abs_delta_in_se,
        min(se_ratio) as se_ratio_min,
        max(se_ratio) as se_ratio_max,
        sum(case when stars_match then 1 else 0 end) as stars_agree
    from coefficients
    group by wave, table_no
),

final as (
    select per_table.*, r_squared.max_abs_r2_delta
    from per_table
    left join r_squared using (wave, table_no)
)

select * from final
order by wave, table_no;

comment on view marts.replication_summary is 'One row per wave x table: how close the coefficients of Tables 2-4 come to the published ones';
comment on column marts.replication_summary.wave is 'Wave identifier';
comment on column marts.replication_summary.table_no is 'The paper''s table (2, 3 or 4)';
comment on column marts.replication_summary.n_coefficients is 'Published coefficients in the table';
comment on column marts.replication_summary.max_abs_delta_in_se is 'Largest |estimate - published| / published SE';
comment on column marts.replication_summary.se_ratio_min is 'Smallest SE / published SE';
comment on column marts.replication_summary.se_ratio_max is 'Largest SE / published SE';
comment on column marts.replication_summary.stars_agree is 'Coefficients whose stars equal the printed ones';
comment on column marts.replication_summary.max_abs_r2_delta is 'Largest |R-squared - published R-squared| over the table''s models';
