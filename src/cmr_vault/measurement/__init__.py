"""Measurement for companies: aggregate figures about their relationships, never a person."""
