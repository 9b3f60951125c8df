"""Tests of the external-API layer: search providers, LLM client, search cache."""
