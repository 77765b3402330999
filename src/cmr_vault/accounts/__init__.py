"""Customers, auditors and operators: sign-up, sign-in (argon2id), sessions, throttling."""
