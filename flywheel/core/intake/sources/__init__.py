"""Traces from where teams keep them: OpenTelemetry GenAI (OTLP JSON), OpenInference, Langfuse,
LangSmith and OpenAI-style chat logs, mapped onto flywheel's trace contract.

Every source is read as *calls* (one LLM call: when, what went in, what came out, its ids and
attributes); calls are grouped into conversations (by conversation, session or thread id, else by
trace id), ordered by time and merged into one message list (flywheel.core.intake.sources.assemble);
the fields only flywheel has come from the mapping file (flywheel.core.intake.sources.mapping).
"""
