"""The ``streamproc`` command: one module per verb family."""
