"""flywheel keeps an LLM application's eval suite alive."""

__version__ = "0.1.0"
