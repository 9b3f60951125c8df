"""A private redis-server and local stand-ins for external APIs, for tests and the demo."""
