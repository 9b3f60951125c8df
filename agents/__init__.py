"""The project's agents, registered by name through the ``streamproc.agents`` entry points."""
