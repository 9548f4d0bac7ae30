"""Runtime tests run on every shard shape (the `shape` and `rt` fixtures are in tests/conftest.py)."""
