"""Fixtures shared by every domain's tests.

Each database test runs on SQLite and, when CMR_VAULT_TEST_POSTGRES_URL is set (CI sets it), on
PostgreSQL too. Isolation is a fresh database per test, cloned from one migrated template: a
SQLite file copy, or PostgreSQL's CREATE DATABASE … TEMPLATE. That keeps the audit table's
append-only trigger in force during tests, which a TRUNCATE-based reset would have to disable.
"""

from __future__ import annotations

import os
import queue
import shutil
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import pytest
from argon2 import PasswordHasher
from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy import create_engine, make_url, text
from sqlmodel import Session

from cmr_vault.accounts import service as accounts_service
from cmr_vault.app import create_app
from cmr_vault.crypto.keyring import Keyring, write_keyring
from cmr_vault.db.engine import make_engine
from cmr_vault.db.migrate import upgrade
from cmr_vault.runtime import Runtime
from cmr_vault.settings import Settings, get_settings

POSTGRES_URL = os.environ.get("CMR_VAULT_TEST_POSTGRES_URL", "")
BASE_URL = "http://127.0.0.1:8000"
DATABASES = ["sqlite", "postgresql"]
# A Monday morning (UTC): quiet hours and weekday rules start from a known hour.
FROZEN_START = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


class FrozenClock:
    """A clock that stands still until the test moves it forward.

    It has no setter: a test cannot jump it to the real time half-way through, which is how a
    session started at the frozen hour expired on every later real day. A test that talks to
    something reading the process clock (a live server, procrastinate, a webhook receiver)
    is marked `real_clock` and gets a `RealClock` from its first fixture on.
    """

    def __init__(self, start: datetime = FROZEN_START) -> None:
        self._current = start

    def now(self) -> datetime:
        return self._current

    def advance(self, **delta: float) -> None:
        """Move forward by a `timedelta(**delta)`."""
        step = timedelta(**delta)
        if step < timedelta(0):
            raise ValueError("a test clock only moves forward")
        self._current += step

    def move_to(self, moment: datetime) -> None:
        """Move forward to a moment on the frozen timeline (an expiry, a quiet hour)."""
        self.advance(seconds=(moment - self._current).total_seconds())


class RealClock:
    """The process clock, which a test can still move forward by an offset."""

    def __init__(self) -> None:
        self._offset = timedelta(0)

    def now(self) -> datetime:
        return datetime.now(UTC) + self._offset

    def advance(self, **delta: float) -> None:
        """Move forward by a `timedelta(**delta)`."""
        step = timedelta(**delta)
        if step < timedelta(0):
            raise ValueError("a test clock only moves forward")
        self._offset += step


ClockUnderTest = FrozenClock | RealClock


# Fixtures that hand the test's data to something reading the process clock; a test using one
# gets the `real_clock` marker, so its `clock` is real from the first fixture on.
# Known by the function, not the name: two modules may each have a fixture called `connected`.
REAL_TIME_FIXTURES: set[Callable[..., object]] = set()
F = TypeVar("F", bound=Callable[..., object])


def reads_real_time(fixture_function: F) -> F:
    """Declare a fixture whose collaborators read the process clock (see `REAL_TIME_FIXTURES`)."""
    REAL_TIME_FIXTURES.add(fixture_function)
    return fixture_function


def _uses_real_time(item: pytest.Item) -> bool:
    """Whether a fixture in force for this test was declared with `reads_real_time`."""
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return False
    return any(definitions[-1].func in REAL_TIME_FIXTURES
               for definitions in info.name2fixturedefs.values() if definitions)


# Suites that judge a live vault under load: they run alone (`-m serial`), since a test beside
# them on a 2-core machine would be part of the load they measure. (A fault test that touches
# what other tests share, the PostgreSQL server, carries the marker itself.)
SERIAL_SUITES = ("load",)
TESTS_ROOT = Path(__file__).parent


# Suites of a few long tests (a browser, a live server, a fuzzer): started first, so that on
# two workers the short in-process files fill the time around them instead of trailing after.
LONG_SUITES = ("e2e", "hostile")


def _suite(item: pytest.Item) -> str:
    return item.path.relative_to(TESTS_ROOT).parts[0]


def _repeats_an_input_variant_on_postgresql(item: pytest.Item, seen: set[object]) -> bool:
    """A parametrized test's second and later input variants, on PostgreSQL.

    Each test function runs on PostgreSQL at least once; the variants of its other parameters
    (a refused parameter, a bad field value) exercise validation, which no database changes,
    and run on SQLite.
    """
    callspec = getattr(item, "callspec", None)
    if callspec is None or callspec.params.get("database_url") != "postgresql":
        return False
    if len(callspec.params) == 1:
        return False
    function = (item.path, getattr(item, "originalname", item.name))
    if function in seen:
        return True
    seen.add(function)
    return False


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    seen: set[object] = set()
    repeated = [item for item in items if _repeats_an_input_variant_on_postgresql(item, seen)]
    if repeated:
        config.hook.pytest_deselected(items=repeated)
        left_out = set(repeated)
        items[:] = [item for item in items if item not in left_out]
    for item in items:
        if _uses_real_time(item):
            item.add_marker(pytest.mark.real_clock)
        if _suite(item) in SERIAL_SUITES:
            item.add_marker(pytest.mark.serial)
        if "clock" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.clocked)
    items.sort(key=lambda item: _suite(item) not in LONG_SUITES)


@pytest.fixture(autouse=True)
def _cheap_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """argon2id at production cost takes ~50 ms a hash; tests use the same algorithm, cheaper."""
    cheap = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    monkeypatch.setattr(accounts_service, "_hasher", cheap)
    monkeypatch.setattr(accounts_service, "_DUMMY_HASH", cheap.hash("dummy-password"))


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated SQLite file, copied for every test."""
    path = tmp_path_factory.mktemp("template") / "template.db"
    engine = make_engine(f"sqlite:///{path}", immediate=False)
    upgrade(engine)
    engine.dispose()
    return path


def _admin_url(database: str) -> str:
    return make_url(POSTGRES_URL).set(database=database).render_as_string(hide_password=False)


class PostgresClones:
    """Fresh copies of one migrated template, made ahead of need in a thread of their own.

    CREATE DATABASE … TEMPLATE takes most of a second (PostgreSQL copies and syncs files), and
    half the suite's tests wanted one: made while the previous test runs, nobody waits for it.
    """

    def __init__(self, template: str, *, ahead: int = 2) -> None:
        self._template = template
        self._admin = create_engine(_admin_url("postgres"), isolation_level="AUTOCOMMIT",
                                    pool_pre_ping=True)
        self._ready: queue.Queue[str | BaseException] = queue.Queue(maxsize=ahead)
        self._stop = threading.Event()
        self._maker = threading.Thread(target=self._make, name="postgres-clones", daemon=True)
        self._maker.start()

    def _make(self) -> None:
        while not self._stop.is_set():
            name = f"cmr_t_{uuid.uuid4().hex[:12]}"
            try:
                self._run(f'CREATE DATABASE "{name}" TEMPLATE "{self._template}"')
            except Exception as exc:  # the test that takes it reports the failure
                self._ready.put(exc)
                return
            while True:
                try:
                    self._ready.put(name, timeout=0.2)
                    break
                except queue.Full:
                    if self._stop.is_set():
                        self.drop(name)
                        return

    def _run(self, statement: str) -> None:
        with self._admin.connect() as conn:
            conn.execute(text(statement))

    def take(self) -> str:
        """A fresh database's name, for one test."""
        made = self._ready.get(timeout=300)
        if isinstance(made, BaseException):
            raise made
        return made

    def drop(self, name: str) -> None:
        self._run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def close(self) -> None:
        """Stop making copies and drop the ones nobody took."""
        self._stop.set()
        self._maker.join()  # it drops the copy it could not hand over
        while not self._ready.empty():
            made = self._ready.get()
            if isinstance(made, str):
                self.drop(made)
        self._run(f'DROP DATABASE IF EXISTS "{self._template}" WITH (FORCE)')
        self._admin.dispose()


@pytest.fixture(scope="session")
def postgres_clones() -> Iterator[PostgresClones]:
    """Copies of a migrated PostgreSQL template database, all dropped at the end of the run."""
    if not POSTGRES_URL:
        pytest.skip("CMR_VAULT_TEST_POSTGRES_URL is not set: PostgreSQL tests skipped")
    name = f"cmr_tpl_{uuid.uuid4().hex[:10]}"
    admin = create_engine(_admin_url("postgres"), isolation_level="AUTOCOMMIT",
                          pool_pre_ping=True)
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    engine = make_engine(_admin_url(name))
    upgrade(engine)
    engine.dispose()
    clones = PostgresClones(name)
    yield clones
    clones.close()


@pytest.fixture(params=DATABASES)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, migrated database for one test, on each backend in turn."""
    if request.param == "sqlite":
        path = tmp_path / "vault.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite:///{path}"
        return
    clones: PostgresClones = request.getfixturevalue("postgres_clones")
    name = clones.take()
    yield _admin_url(name)
    clones.drop(name)


@pytest.fixture
def clock(request: pytest.FixtureRequest) -> ClockUnderTest:
    """The test's one clock: frozen on a fixed Monday morning, or real for `real_clock` tests.

    Chosen once, before any other fixture reads it, so no test mixes the two timelines.
    """
    if request.node.get_closest_marker("real_clock"):
        return RealClock()
    return FrozenClock()


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    """Settings pointing at the test's own database, key store and keyring."""
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=tmp_path,
        database_url=database_url,
        keystore_url=f"sqlite:///{tmp_path / 'keys' / 'keystore.db'}",
        base_url=BASE_URL,
        checkpoint_interval_seconds=0,
        delivery_interval_seconds=0,
    )
    write_keyring(settings.resolved_key_file, Keyring.generate())
    return settings


@pytest.fixture
def runtime(settings: Settings, clock: ClockUnderTest) -> Iterator[Runtime]:
    """The process collaborators, on the test clock."""
    runtime = Runtime.build(settings, clock=clock)
    runtime.data_keys.create_schema()
    yield runtime
    runtime.dispose()


@pytest.fixture
def db_session(runtime: Runtime) -> Iterator[Session]:
    """A session for service-level tests; the test decides whether to commit.

    Its transactions begin deferred, so a test holding a read open never blocks the app's
    writers; `rollback()` ends the read snapshot to see what the app wrote since.
    """
    engine = make_engine(runtime.settings.resolved_database_url, immediate=False)
    with Session(engine, expire_on_commit=False) as session:
        yield session
    engine.dispose()


@pytest.fixture
def app(settings: Settings, runtime: Runtime) -> Litestar:
    """The real application on the test's database."""
    return create_app(settings, runtime=runtime)


@pytest.fixture
def client(app: Litestar) -> Iterator[TestClient[Litestar]]:
    """An HTTP client talking to the app in-process."""
    with TestClient(app, base_url=BASE_URL) as client:
        yield client


@pytest.fixture
def cli_env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Point the `cmr-vault` command at the test's database, key store and keyring."""
    monkeypatch.setenv("CMR_VAULT_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("CMR_VAULT_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("CMR_VAULT_KEYSTORE_URL", settings.keystore_url)
    monkeypatch.setenv("CMR_VAULT_BASE_URL", settings.base_url)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture
def other_client(app: Litestar) -> Iterator[TestClient[Litestar]]:
    """A second, independent browser (its own cookies) on the same app."""
    with TestClient(app, base_url=BASE_URL) as client:
        yield client
