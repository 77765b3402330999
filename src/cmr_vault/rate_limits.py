"""Request limits per caller, shared by every worker process through the database.

A sliding one-minute window over a log of hits, one row per counted request: fair between
callers because each has its own key, and vault-wide because every worker and host counts the
same rows, so `--workers 4` still means the configured limit, not four times it. Callers are
stored only as a keyed hash (an address is personal data). Sign-in throttling, which guards
passwords and counts failures rather than requests, lives with the accounts.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from sqlalchemy import Column, Float, Index, delete, func, insert, select
from sqlmodel import Field, Session, SQLModel, col

from cmr_vault.errors import TooManyRequests

WINDOW_SECONDS = 60.0
SWEEP_EVERY_SECONDS = 5.0
SWEEP_AT_MOST = 5_000


class RateHit(SQLModel, table=True):
    """One counted request of one caller."""

    __tablename__ = "rate_hit"
    __table_args__ = (Index("ix_rate_hit_caller_at", "caller_key", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    caller_key: str = Field(max_length=64)
    at: float = Field(sa_column=Column(Float, nullable=False, index=True))  # Unix seconds


class RateLimiter:
    """At most `limit` hits per caller in any minute, counted for one kind of request.

    The count is part of the request's own transaction, so a request that fails is rolled back
    and not counted, and nothing waits on a second connection (on SQLite that would wait for
    the write lock the request itself holds). On SQLite requests take turns and the limit is
    exact; on PostgreSQL requests of one caller still in flight do not see each other, so a
    burst may pass the limit by as many requests as are in flight at once.
    """

    def __init__(self, kind: str, limit: int, *, caller_key: Callable[[str], str],
                 now: Callable[[], float] = time.time) -> None:
        self._kind, self._limit = kind, limit
        self._caller_key, self._now = caller_key, now
        self._next_sweep = 0.0

    def hit(self, session: Session, caller: str, what: str) -> None:
        """Count one request of `caller`, or raise TooManyRequests with the wait."""
        now = self._now()
        key = self._caller_key(f"{self._kind}\x00{caller}")
        wait = self._wait(session, key, now)
        if wait:
            raise TooManyRequests(
                f"Too many {what}: at most {self._limit} a minute. Try again in {wait} s.",
                retry_after=wait)
        session.execute(insert(RateHit).values(caller_key=key, at=now))
        if now >= self._next_sweep:
            self._sweep(session, now)

    def would_refuse(self, session: Session, caller: str) -> bool:
        """Whether `caller`'s next request would be refused, counting nothing: a look before
        work too costly to spend on a request the limit will refuse anyway."""
        now = self._now()
        return bool(self._wait(session, self._caller_key(f"{self._kind}\x00{caller}"), now))

    def _wait(self, session: Session, key: str, now: float) -> int:
        """Seconds until `key` may make another request; 0 when it may now."""
        in_window = (col(RateHit.caller_key) == key) & (col(RateHit.at) > now - WINDOW_SECONDS)
        count, oldest = session.execute(
            select(func.count(), func.min(RateHit.at)).where(in_window)).one()
        if count < self._limit:
            return 0
        return int(max(1, math.ceil(oldest + WINDOW_SECONDS - now)))

    def _sweep(self, session: Session, now: float) -> None:
        """Forget hits that left the window. Rows another worker is deleting are skipped, not
        waited for, so a sweep never holds up a request."""
        expired = select(RateHit.id).where(col(RateHit.at) <= now - WINDOW_SECONDS) \
            .limit(SWEEP_AT_MOST).with_for_update(skip_locked=True)
        session.execute(delete(RateHit).where(col(RateHit.id).in_(expired)))
        self._next_sweep = now + SWEEP_EVERY_SECONDS


class RateLimits:
    """The vault's limits, one limiter per kind of request."""

    def __init__(self, *, token_per_minute: int, pushes_per_minute: int,
                 signups_per_minute: int, caller_key: Callable[[str], str],
                 account_mails_per_minute: int = 3) -> None:
        self.token = RateLimiter("token", token_per_minute, caller_key=caller_key)
        self.pushes = RateLimiter("pushes", pushes_per_minute, caller_key=caller_key)
        self.signups = RateLimiter("signups", signups_per_minute, caller_key=caller_key)
        # Reset and confirmation mails per mailbox written to; an address asking may ask for
        # several mailboxes (a family behind one router), up to ten times that.
        self.account_mails = RateLimiter("account-mails", account_mails_per_minute,
                                         caller_key=caller_key)
        self.account_mail_askers = RateLimiter("account-mail-askers",
                                               10 * account_mails_per_minute,
                                               caller_key=caller_key)
        # Company dashboard sign-ins, per address and per client id (ten a minute each).
        self.company_signins = RateLimiter("company-signins", 10, caller_key=caller_key)
