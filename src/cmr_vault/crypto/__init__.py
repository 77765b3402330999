"""Envelope encryption: key-encryption keys, per-customer data keys, field cipher, blind index."""
