"""The version of lossbench (pyproject.toml's, checked by tests/test_cli.py)."""

__version__ = "0.1.0"
