"""Assets, one module per stage in flow order: raw -> staging -> analysis -> marts.

Every asset is partitioned by wave (a dynamic partition; the reference wave is `2019`), its
key prefix is its DuckDB schema, and its group is its stage.
"""

import warnings

from dagster import DynamicPartitionsDefinition

# Partitioned asset checks are a preview feature of this Dagster release; the project pins the
# release and tests the behaviour it relies on, so the warning is noise for researchers.
warnings.filterwarnings("ignore", message="Specifying a partitions_def on an AssetCheckSpec")

wave_partitions = DynamicPartitionsDefinition(name="wave")
