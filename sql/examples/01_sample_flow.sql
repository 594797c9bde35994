-- The sample flow of every wave: handed out -> returned -> valid -> analysed.
select wave, step_order, step, n_before, n_excluded, n_after, reason
from analysis.sample_flow
order by wave, step_order;
