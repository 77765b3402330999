"""The live vault of the load tests, reused under faults."""

from tests.load.conftest import live

__all__ = ["live"]
