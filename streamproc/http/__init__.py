"""The HTTP API: app, tokens and scopes, error replies, server-sent events, OpenAPI."""
