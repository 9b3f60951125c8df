"""The Redis contract: key names, entry and hash layouts, and the engine's Redis Functions."""
