"""CMR Vault: a consent-first customer-managed relationship vault."""

__version__ = "0.1.0"
