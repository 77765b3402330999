"""Consent tests reuse the OAuth fixtures (a company, a customer and their browser) and the
marketing ones (a shop allowed to market, a customer's browser on the same runtime)."""

from tests.marketing.conftest import customer_browser, mail_client, mail_runtime, mailbox, shop
from tests.oauth.conftest import browser, company, customer

__all__ = ["browser", "company", "customer", "customer_browser", "mail_client", "mail_runtime",
           "mailbox", "shop"]
