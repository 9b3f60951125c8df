"""How many consumers each agent type needs, and sharing that budget across processes."""
