"""The names of audit actions that reports count, shared by the code that writes and reads them.

Free strings let the auditor report count every `push.*` entry as a push, so one consent check
and one delivered push showed as three. Writers use these names; `auditor.activity` says what
each one counts as.
"""

from __future__ import annotations

from enum import StrEnum


class PushAction(StrEnum):
    """The entries one company push can leave in the log, in the order they happen."""

    CHECKED = "push.checked"
    """A consent check (`POST /api/v1/consent-check`): decided, nothing sent, not a push."""
    DECIDED = "push.decided"
    """The push itself, decided when the company submits it: allowed, deferred or refused."""
    DEFERRED = "push.deferred"
    """Decided again at delivery time and held back (quiet hours, caps)."""
    STOPPED = "push.stopped"
    """Decided again at delivery time and refused (consent withdrawn meanwhile)."""
    RETRY = "push.retry"
    """Delivery failed; it will be tried again."""
    FAILED = "push.failed"
    """Delivery failed for the last time."""
    DELIVERED = "push.delivered"
    """Handed to the channel: the customer has it."""
