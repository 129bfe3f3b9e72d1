"""Privacy: erase a customer along lineage (`flywheel forget`: raw, sample, scrub, label, drift, embed and eval tables,
exports, the file's bytes) and delete expired raw traffic (`privacy/raw_retention`: raw.traces, raw.quarantine, inbox).
"""
