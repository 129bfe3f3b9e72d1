"""Intake: validate trace files against the contract and load them, each bad record quarantined with its reason.
Feeds `raw/traces` and `raw/quarantine` (and the manifest `raw.ingested_files`).
"""
