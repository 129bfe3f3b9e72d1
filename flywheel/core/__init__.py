"""Pure logic, one package per station, named as the Dagster groups and the README name them.

No Dagster, CLI or demo imports here (flywheel_tests/test_layout.py checks it), so every station can be
tested and reused on its own: intake, sampling, scrub, labeling, evalset, drift, privacy, and common.
"""
