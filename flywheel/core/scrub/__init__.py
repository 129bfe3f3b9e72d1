"""Station 2, anonymization: layered regex, NER and customer-vocabulary scrubbing, the only reader of raw text.
Feeds `scrub/anonymized_traces`, `scrub/scrub_report` and `scrub/residue` (typed, numbered placeholders; keyed hashes).
"""

import importlib

__all__ = ["SCRUBBER_VERSION", "Scrubber", "ScrubbedText", "Span"]


def __getattr__(name: str):
    # The scrubber pulls in Presidio and spaCy (seconds, hundreds of MB); the station's light modules
    # (residue, leaks) are read by verbs that never scrub, so it loads only when asked for (PEP 562).
    if name in __all__:
        return getattr(importlib.import_module("flywheel.core.scrub.scrubber"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
