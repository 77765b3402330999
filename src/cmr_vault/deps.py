"""App-wide dependencies and the annotations handlers use to ask for them.

Litestar 2.23+ wants injected parameters marked as such (`NamedDependency`); these aliases keep
handler signatures short: `db_session: DbSession, runtime: RuntimeDep`.
"""

from __future__ import annotations

from typing import TypeAlias

from litestar.datastructures import State
from litestar.di import NamedDependency
from sqlmodel import Session

from cmr_vault.runtime import Runtime

DbSession: TypeAlias = NamedDependency[Session]
RuntimeDep: TypeAlias = NamedDependency[Runtime]


def provide_runtime(state: State) -> Runtime:
    """The process's collaborators (engines, keys, ciphers, clock)."""
    runtime: Runtime = state.runtime
    return runtime
