-- Mean depression score by parental migration group (Table 1's first row).
with sample as (
    select wave, migration_group, depression
    from analysis.analytic_sample
),

final as (
    select
        wave,
        migration_group,
        count(*) as n,
        round(avg(depression), 3) as mean_depression,
        round(stddev_samp(depression), 3) as sd_depression
    from sample
    group by wave, migration_group
)

select * from final
order by wave, migration_group;
