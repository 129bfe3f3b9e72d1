"""Station 2: layered anonymization (regex, NER, customer-vocabulary lookup).

The only code besides raw intake that ever reads customer text. What leaves it is scrubbed text with
typed, numbered placeholders and the spans that were replaced.
"""

import logging

# Presidio warns about every recognizer of a language we do not load, on every engine it builds.
logging.getLogger("presidio-analyzer").setLevel(logging.ERROR)

from flywheel.core.scrub.scrubber import SCRUBBER_VERSION, ScrubbedText, Scrubber, Span

__all__ = ["SCRUBBER_VERSION", "Scrubber", "ScrubbedText", "Span"]
