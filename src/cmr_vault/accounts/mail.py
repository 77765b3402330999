"""The vault's own e-mails to account holders: the reset link and the confirmation link.

They are written in the language of the person who asked (the language the page they asked
from was in), built during the request and sent after the answer has gone, so the answer's
timing says nothing about whether a mail was sent. A mail that cannot be sent is logged by its
error type only: never the address, never the link.
"""

from __future__ import annotations

import logging

from cmr_vault.accounts.recovery import CONFIRMATION_LIFETIME, RESET_LIFETIME, IssuedLink
from cmr_vault.i18n import current_language
from cmr_vault.i18n import gettext as _
from cmr_vault.marketing.delivery import AccountMail, AccountMailer, failure_reason

log = logging.getLogger("cmr_vault.accounts")


def reset_mail(*, address: str, base_url: str, link: IssuedLink) -> AccountMail:
    """The password-reset e-mail, in the language being spoken (see `use_language`)."""
    return AccountMail(
        address=address,
        language=current_language(),
        subject=_("Reset your CMR Vault password"),
        body=_(
            "Someone, hopefully you, asked to reset the password of the CMR Vault that uses "
            "this e-mail address.\n\n"
            "To choose a new password, open this link within %(minutes)d minutes:\n\n"
            "%(url)s\n\n"
            "The link works once. Choosing a new password signs you out everywhere.\n"
            "If you did not ask for this, ignore this e-mail: your password stays as it is."
        ) % {"minutes": int(RESET_LIFETIME.total_seconds() // 60),
             "url": f"{base_url}/account/reset?token={link.token}"},
    )


def confirmation_mail(*, address: str, base_url: str, link: IssuedLink) -> AccountMail:
    """The e-mail that confirms a new vault's address (or a changed one), in the language
    being spoken."""
    return AccountMail(
        address=address,
        language=current_language(),
        subject=_("Confirm your e-mail address for CMR Vault"),
        body=_(
            "Please confirm that this e-mail address belongs to your CMR Vault.\n\n"
            "Open this link within %(days)d days and press the button on the page:\n\n"
            "%(url)s\n\n"
            "Until then your vault works as usual, but companies are not told that the "
            "address is confirmed.\n"
            "If you did not create a vault, ignore this e-mail."
        ) % {"days": CONFIRMATION_LIFETIME.days,
             "url": f"{base_url}/account/confirm?token={link.token}"},
    )


def send_quietly(mailer: AccountMailer, mail: AccountMail) -> None:
    """Send after the response; a failure is logged without the address or the link (the
    person can ask again), never raised into a request that has already been answered."""
    try:
        mailer.send(mail)
    except Exception as exc:  # whatever the transport raised: logged, not lost
        log.warning("account e-mail not sent: %s", failure_reason(exc))
