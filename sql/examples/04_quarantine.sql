-- Data-entry errors waiting for review: the raw value, the rule it broke, the file row.
select wave, qid, source_row, variable, raw_value, rule, "check"
from staging.quarantine
order by wave, source_row, variable;
