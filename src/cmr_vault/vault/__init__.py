"""The customer's profile: sealed fields, export, erasure (crypto-shredding)."""
