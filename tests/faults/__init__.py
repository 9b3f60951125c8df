"""The fault matrix (/work/shared/FAULTS.md) as tests: one module per row group, each test named
after its row, every run checked by the shared oracle (oracle.py)."""
