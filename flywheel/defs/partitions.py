import dagster as dg

from flywheel.settings import partitions_start

# Weeks start on Monday (day_offset=1), as the essay's Monday run does.
weekly_partitions = dg.WeeklyPartitionsDefinition(start_date=partitions_start(), day_offset=1)
