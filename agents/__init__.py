"""The project's agents, installed from agents/ as ``streamproc_agents`` and registered by name
through the ``streamproc.agents`` entry points."""
