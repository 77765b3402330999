"""The permission-marketing policy engine: load, validate, compile, decide, explain."""
