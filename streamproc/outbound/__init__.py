"""Calls to external APIs on agents' behalf: guarded HTTP, shared limits, caching, providers."""
