"""Consent tests reuse the OAuth fixtures: a company, a customer and their browser."""

from tests.oauth.conftest import browser, company, customer

__all__ = ["browser", "company", "customer"]
