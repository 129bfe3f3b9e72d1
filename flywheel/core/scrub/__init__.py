"""Station 2, anonymization: layered regex, NER and customer-vocabulary scrubbing, the only reader of raw text.
Feeds `scrub/anonymized_traces`, `scrub/scrub_report` and `scrub/residue` (typed, numbered placeholders; keyed hashes).
"""

import logging

# Presidio warns about every recognizer of a language we do not load, on every engine it builds.
logging.getLogger("presidio-analyzer").setLevel(logging.ERROR)

from flywheel.core.scrub.scrubber import SCRUBBER_VERSION, ScrubbedText, Scrubber, Span

__all__ = ["SCRUBBER_VERSION", "Scrubber", "ScrubbedText", "Span"]
