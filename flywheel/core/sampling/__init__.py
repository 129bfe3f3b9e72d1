"""Station 1, sampling: the week's deterministic random, stratified and anomaly draws, and incident windows.
Feeds `sample/sampled_traces` (weekly partitions); incidents come from `inbox/incidents/` through `incident_sensor`.
"""
