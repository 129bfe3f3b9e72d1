"""Pure logic: no Dagster imports here, so every station can be tested and reused on its own."""
