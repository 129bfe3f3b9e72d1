"""Sentence embeddings with a cache in the warehouse, keyed by (model, text hash).

An unchanged text is never embedded twice: vectors live in embed.cache as fixed-size FLOAT arrays, and
only texts the cache has not seen go to the model. Vectors are L2-normalised, so a dot product is the
cosine similarity.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import duckdb
import numpy as np
import polars as pl

from flywheel.core.common import lake


class Embedder(Protocol):
    model_name: str
    dim: int

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0


def user_text(messages: list[dict], roles: tuple[str, ...] = ("user",)) -> str:
    """What a trace or an eval row is about, for embedding: by default its user turns."""
    return "\n".join(m["content"] for m in messages if m.get("role") in roles)


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def ensure_cache(conn: duckdb.DuckDBPyConnection, dim: int) -> None:
    conn.execute("CREATE SCHEMA IF NOT EXISTS embed")
    # DuckLake stores lists, not fixed-size arrays: a FLOAT[] there, the tighter FLOAT[dim] on the file.
    vector = "FLOAT[]" if lake.on_lake(conn) else f"FLOAT[{dim}]"
    conn.execute(f"CREATE TABLE IF NOT EXISTS embed.cache (model VARCHAR, text_hash VARCHAR, vector {vector})")


def embed(conn: duckdb.DuckDBPyConnection, embedder: Embedder, texts: Sequence[str],
          stats: CacheStats | None = None) -> np.ndarray:
    """Vectors for texts, in order, from the cache where possible."""
    stats = stats if stats is not None else CacheStats()
    if not texts:
        return np.zeros((0, embedder.dim), dtype=np.float32)
    ensure_cache(conn, embedder.dim)
    hashes = [text_hash(t) for t in texts]
    wanted = pl.DataFrame({"text_hash": list(dict.fromkeys(hashes))})
    conn.register("wanted_hashes", wanted)
    try:
        cached = conn.execute(
            "SELECT c.text_hash, c.vector FROM embed.cache c JOIN wanted_hashes w USING (text_hash) WHERE c.model = ?",
            [embedder.model_name],
        ).fetchall()
    finally:
        conn.unregister("wanted_hashes")
    vectors = {h: np.asarray(v, dtype=np.float32) for h, v in cached}
    missing = [h for h in wanted["text_hash"] if h not in vectors]
    stats.hits += len(wanted) - len(missing)
    stats.misses += len(missing)
    if missing:
        first_text = {h: t for h, t in zip(hashes, texts)}
        fresh = embedder.encode([first_text[h] for h in missing]).astype(np.float32)
        conn.register("fresh_vectors", pl.DataFrame({
            "model": [embedder.model_name] * len(missing), "text_hash": missing,
            "vector": pl.Series("vector", fresh),  # a 2-D array becomes a fixed-size Array column, no copy to lists
        }))
        try:
            conn.execute("INSERT INTO embed.cache SELECT model, text_hash, vector::FLOAT[] FROM fresh_vectors")
        finally:
            conn.unregister("fresh_vectors")
        vectors.update(zip(missing, fresh))
    return np.stack([vectors[h] for h in hashes])
