"""The fault matrix (rows A1-H2 and the security checks; see README, Reliability) as tests:
one module per row group, each test named after its row, every run checked by the shared
oracle (oracle.py)."""
