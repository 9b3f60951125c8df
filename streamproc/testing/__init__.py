"""A private redis-server, local stand-ins for external APIs and two trivial agents (``echo``,
``sleep``), for tests, trials and the demo."""
