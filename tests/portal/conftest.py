"""The customer's pages reuse the OAuth fixtures: a company, a customer and their browser."""

from tests.oauth.conftest import browser, company, customer

__all__ = ["browser", "company", "customer"]
