"""Fault tests: the load of tests/load while the server is SIGKILLed and restarted, and while
PostgreSQL restarts. Run with `python -m pytest tests/fault -s` to see the figures."""
