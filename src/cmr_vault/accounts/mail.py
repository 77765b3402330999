"""The vault's own e-mails to account holders: the reset link and the confirmation link.

They are written in the language of the person who asked (the page they asked from), built
here and sent after the answer has gone, so the answer's timing says nothing about whether a
mail was sent. A mail that cannot be sent is logged by its error type only: never the address,
never the link.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from cmr_vault.accounts.recovery import CONFIRMATION_LIFETIME, RESET_LIFETIME, IssuedLink
from cmr_vault.marketing.delivery import AccountMail, AccountMailer, failure_reason

log = logging.getLogger("cmr_vault.accounts")

Translate = Callable[[str], str]


def reset_mail(
    *, address: str, base_url: str, link: IssuedLink, language: str, _: Translate
) -> AccountMail:
    """The password-reset e-mail."""
    minutes = int(RESET_LIFETIME.total_seconds() // 60)
    return AccountMail(
        address=address,
        language=language,
        subject=_("Reset your CMR Vault password"),
        body=_(
            "Someone, hopefully you, asked to reset the password of the CMR Vault that "
            "uses this e-mail address.\n\n"
            "To choose a new password, open this link within {minutes} minutes:\n\n"
            "{url}\n\n"
            "The link works once. Choosing a new password signs you out everywhere.\n"
            "If you did not ask for this, ignore this e-mail: your password stays as it "
            "is."
        ).format(minutes=minutes, url=f"{base_url}/account/reset?token={link.token}"),
    )


def confirmation_mail(
    *, address: str, base_url: str, link: IssuedLink, language: str, _: Translate
) -> AccountMail:
    """The e-mail that confirms a new vault's address (or a changed one)."""
    days = CONFIRMATION_LIFETIME.days
    return AccountMail(
        address=address,
        language=language,
        subject=_("Confirm your e-mail address for CMR Vault"),
        body=_(
            "Please confirm that this e-mail address belongs to your CMR Vault.\n\n"
            "Open this link within {days} days and press the button on the page:\n\n"
            "{url}\n\n"
            "Until then your vault works as usual, but companies are not told that the "
            "address is confirmed.\n"
            "If you did not create a vault, ignore this e-mail."
        ).format(days=days, url=f"{base_url}/account/confirm?token={link.token}"),
    )


def send_quietly(mailer: AccountMailer, mail: AccountMail) -> None:
    """Send after the response; a failure is logged without the address or the link (the
    person can ask again), never raised into a request that has already been answered."""
    try:
        mailer.send(mail)
    except Exception as exc:
        log.warning("account e-mail not sent: %s", failure_reason(exc))
