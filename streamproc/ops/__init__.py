"""Operator reads and actions: status, events, progress, dead letters, replay, metrics polling."""
