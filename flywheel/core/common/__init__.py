"""What every station uses: the clock (FLYWHEEL_NOW), DuckDB connections and transactions, keyed hashes,
Markdown tables for metadata, and numbered records from files. Feeds no asset key of its own.
"""
