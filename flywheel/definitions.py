"""The Dagster code location: thin on purpose, everything is built in flywheel/defs."""

import dagster as dg

from flywheel.defs import dead_runs, drift, evalset, intake, jobs, labeling, privacy, regression, sampling, scrub, sensors
from flywheel.resources.embedder import EmbedderResource
from flywheel.resources.io_manager import WarehousePolarsIOManager
from flywheel.resources.scrubber import ScrubberResource
from flywheel.resources.warehouse import Warehouse
from flywheel.settings import Paths


def build_definitions(data_dir: str | None = None, scrubber: dg.ConfigurableResource | None = None,
                      embedder: dg.ConfigurableResource | None = None) -> dg.Definitions:
    """All of flywheel's Dagster definitions on one data directory; tests pass fakes."""
    paths = Paths(data_dir)
    return dg.Definitions(
        assets=[intake.raw_traces, sampling.sampled_traces, scrub.scrub_week, scrub.residue,
                labeling.failure_taxonomy, labeling.labels, labeling.review_queue, labeling.label_suggestions,
                labeling.week_clusters, evalset.fold_in,
                regression.results, regression.pass_rates, regression.monthly_retirement, drift.monthly_drift,
                privacy.raw_retention],
        asset_checks=[regression.adversarial_share],
        jobs=[intake.ingest_job, sampling.weekly_sample_job, jobs.weekly_loop_job, jobs.taxonomy_job,
              evalset.fold_in_job, regression.pass_rates_job, jobs.monthly_drift_job],
        schedules=[jobs.weekly_loop_schedule, jobs.monthly_drift_schedule],
        sensors=[sensors.incident_sensor, sensors.labels_sensor, dead_runs.dead_runs_sensor],
        resources={
            "warehouse": Warehouse(data_dir=str(paths.data_dir)),
            "scrubber": scrubber or ScrubberResource(
                vocabulary_path=str(paths.customer_vocabulary), keep_terms_path=str(paths.keep_terms),
                patterns_path=str(paths.pii_patterns),
            ),
            "embedder": embedder or EmbedderResource(),
            # Asset key prefix -> schema: sample/sampled_traces is table sample.sampled_traces.
            "io_manager": WarehousePolarsIOManager(data_dir=str(paths.data_dir)),
        },
    )


defs = build_definitions()
