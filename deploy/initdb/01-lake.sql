-- The DuckLake catalog lives in its own database beside Dagster's.
CREATE DATABASE lake OWNER flywheel;
