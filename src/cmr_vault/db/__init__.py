"""Engine, sessions and migrations for SQLite (embedded default) and PostgreSQL."""
