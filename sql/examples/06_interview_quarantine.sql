-- Interview rows waiting for review: the delivered table and row, the column and the rule.
-- Excerpts are never copied here (they may hold names); look them up in raw by source_row.
with final as (
    select wave, table_name, source_row, record_id, column_name, raw_value, rule, detail
    from staging.interview_quarantine
    order by wave, table_name, source_row, rule
)

select * from final;
