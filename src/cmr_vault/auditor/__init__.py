"""The auditor's view: search the log, check its integrity, replay decisions, read reports."""
