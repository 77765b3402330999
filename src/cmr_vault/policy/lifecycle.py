"""How long a consent lasts before the customer must reaffirm it, and when to remind them.

A policy file may carry one `lifecycle:` section:

    lifecycle:
      remind_days_before: 14
      reaffirm:
        "marketing.*": 365      # a grant holding any marketing scope lapses a year after consent
        "opt-in.*": 365         # channel opt-ins ("opt-in.email", "opt-in.inbox", …) likewise

Patterns are shell-style over scope names (and `opt-in.<channel>` for marketing opt-ins). The
shortest matching period wins, and it only ever shortens what the customer chose: a customer
may always pick an earlier end.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from fnmatch import fnmatchcase

DEFAULT_REMIND_DAYS = 14
MAX_DAYS = 3650


@dataclass(frozen=True, slots=True)
class Lifecycle:
    """Reaffirmation periods by scope pattern, and how early reminders go out."""

    remind_days_before: int = DEFAULT_REMIND_DAYS
    reaffirm: tuple[tuple[str, int], ...] = field(default=())

    def reaffirm_days(self, names: Iterable[str]) -> int | None:
        """The shortest period any of these scopes must be reaffirmed within, if any."""
        periods = [days for name in names for pattern, days in self.reaffirm
                   if fnmatchcase(name, pattern)]
        return min(periods) if periods else None

    def bounded_expiry(self, names: Iterable[str], chosen: datetime | None,
                       now: datetime) -> datetime | None:
        """The customer's chosen end, brought forward to the reaffirmation date if sooner."""
        days = self.reaffirm_days(names)
        if days is None:
            return chosen
        latest = now + timedelta(days=days)
        return latest if chosen is None or chosen > latest else chosen

    @property
    def remind_before(self) -> timedelta:
        """How long before a lapse the customer is reminded."""
        return timedelta(days=self.remind_days_before)


def opt_in_scope(channel: str) -> str:
    """The name reaffirmation patterns use for a marketing opt-in on one channel."""
    return f"opt-in.{channel}"
