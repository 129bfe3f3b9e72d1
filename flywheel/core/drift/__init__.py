"""Station 5, drift: embed a month of production (cached by text hash), score its distance to the eval set
against last month's baseline. Feeds `drift/scores` and `drift/high_distance_traces` (monthly partitions).
"""
