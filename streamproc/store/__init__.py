"""The Redis contract, and its one owner: key names (``keys.py``) and the ids in them
(``ids.py``), stream entries (``codec.py``), the workflow hash's fields and state names
(``fields.py``, ``state.py``), the Redis Functions (``lua/``, loaded by ``functions.py``) and
the typed calls of each of them (``calls.py``, ``limits.py``, ``cache.py``)."""
