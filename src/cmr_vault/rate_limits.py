"""Request limits per caller, so one noisy company cannot crowd out the others.

Fixed one-minute windows counted in this process: cheap enough to sit in front of every token
and push request, and fair between callers because each has its own key. With several worker
processes each counts on its own, so the vault-wide limit is at most workers × the setting;
sign-in throttling, which guards passwords, is kept in the database instead (accounts/).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

from cmr_vault.errors import TooManyRequests


class RateLimiter:
    """At most `limit` hits per key in each `window` seconds."""

    def __init__(self, limit: int, window: float = 60.0,
                 now: Callable[[], float] = time.monotonic) -> None:
        self._limit, self._window, self._now = limit, window, now
        self._lock = threading.Lock()
        self._counts: dict[str, tuple[float, int]] = {}

    def hit(self, key: str, what: str) -> None:
        """Count one request for `key`, or raise TooManyRequests with the wait."""
        now = self._now()
        with self._lock:
            started, count = self._counts.get(key, (now, 0))
            if now - started >= self._window:
                started, count = now, 0
            if count >= self._limit:
                wait = max(1, math.ceil(started + self._window - now))
                raise TooManyRequests(
                    f"Too many {what}: at most {self._limit} a minute. Try again in {wait} s.",
                    retry_after=wait)
            self._counts[key] = (started, count + 1)
            if len(self._counts) > 100_000:  # forget idle callers rather than grow forever
                self._counts = {k: v for k, v in self._counts.items()
                                if now - v[0] < self._window}


class RateLimits:
    """The vault's limits, one limiter per kind of request."""

    def __init__(self, *, token_per_minute: int, pushes_per_minute: int) -> None:
        self.token = RateLimiter(token_per_minute)
        self.pushes = RateLimiter(pushes_per_minute)
