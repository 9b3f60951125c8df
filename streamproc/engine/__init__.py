"""The daemons: workers that run agents, the resolver that applies completions."""
