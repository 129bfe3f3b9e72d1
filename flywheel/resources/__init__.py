"""Dagster resources: the warehouse and, in later stations, the scrubber and the embedder."""
