"""The running server's policy set: loaded at start, reloaded on change or SIGHUP.

A reload that fails keeps the last good set in force and reports why; requests never see a
half-loaded set, because the set is replaced by a single reference swap.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from cmr_vault.policy.engine import PolicySet
from cmr_vault.policy.loader import PolicyError, load_policy_set, policy_files

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReloadResult:
    """What a reload did: the version in force afterwards, and any problems."""

    ok: bool
    version: str
    changed: bool
    problems: list[str] = field(default_factory=list)


class PolicyStore:
    """Thread-safe holder of the current PolicySet; watches its directory for edits.

    Readers take `current` without a lock: replacing the set is one reference assignment, and
    a PolicySet never changes, so a request sees either the old set or the new one, whole.
    """

    def __init__(self, directory: Path, *, check_every: float = 2.0,
                 on_reload: Callable[[ReloadResult], None] | None = None) -> None:
        self.directory = directory
        self._lock = threading.Lock()
        self._stamp = self._files_stamp()  # before loading, so an edit meanwhile is seen
        self._current = load_policy_set(directory)
        self._check_every = check_every
        self._checked_at = time.monotonic()
        self._on_reload = on_reload

    @property
    def current(self) -> PolicySet:
        """The set in force; picks up edited files at most every `check_every` seconds."""
        if self._check_every and time.monotonic() - self._checked_at > self._check_every:
            self._checked_at = time.monotonic()
            if self._files_stamp() != self._stamp:
                self.reload()
        return self._current

    def _files_stamp(self) -> tuple[tuple[str, int, int], ...]:
        try:
            return tuple((p.name, p.stat().st_mtime_ns, p.stat().st_size)
                         for p in policy_files(self.directory))
        except OSError:
            return ()

    def reload(self) -> ReloadResult:
        """Load the files again; on failure keep the last good set and say why."""
        with self._lock:
            stamp = self._files_stamp()
            try:
                fresh = load_policy_set(self.directory)
            except PolicyError as exc:
                self._stamp = stamp
                result = ReloadResult(False, self._current.version, False, exc.problems)
                log.error("policy reload failed; keeping version %s:\n%s",
                          self._current.version[:12], "\n".join(exc.problems))
            else:
                changed = fresh.version != self._current.version
                self._current, self._stamp = fresh, stamp
                result = ReloadResult(True, fresh.version, changed)
                log.info("policy set %s loaded (%d rules)", fresh.version[:12], len(fresh.rules))
        if self._on_reload is not None:
            self._on_reload(result)
        return result

    def install_sighup_handler(self) -> None:
        """`kill -HUP <pid>` reloads now; a no-op off the main thread or without SIGHUP.

        The handler only starts a thread: a signal handler runs on the main thread between
        two bytecodes, possibly while that thread holds the reload lock, so reloading inside
        the handler itself could deadlock.
        """
        hangup = getattr(signal, "SIGHUP", None)
        if hangup is None or threading.current_thread() is not threading.main_thread():
            return

        def on_hangup(_signum: int, _frame: object) -> None:
            threading.Thread(target=self.reload, name="policy-reload", daemon=True).start()

        signal.signal(hangup, on_hangup)
