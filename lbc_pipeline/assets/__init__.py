"""Assets, one module per stage in flow order: raw -> staging -> analysis -> marts.

Every asset is partitioned by wave (a dynamic partition; the reference wave is `2019`), its
key prefix is its DuckDB schema, and its group is its stage.
"""

from dagster import DynamicPartitionsDefinition

wave_partitions = DynamicPartitionsDefinition(name="wave")
