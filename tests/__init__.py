"""The test suite, a package: test modules, ``scripts/chaos`` and the processes they start
(``--import tests.agents_for_tests``, ``python -m tests.schema_probe``) import its helpers as
``tests.*``, with the repository root importable."""
