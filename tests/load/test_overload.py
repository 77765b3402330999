"""More connections than the vault can serve at once (Debian's `wrk`, 256 connections): it keeps
serving, sheds the excess with 503 and Retry-After, /health keeps answering, and once the load
stops every request is served again. On PostgreSQL with 1, 2 and 4 workers; on SQLite with one.

Before the database gate, PostgreSQL under 64 connections fell to about 1 request a second and
never recovered: requests held pooled connections while they waited for worker threads, and the
threads were held by requests waiting for connections.
"""

from __future__ import annotations

import os
import queue
import re
import shutil
import sqlite3
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import httpx
import psycopg
import pytest
from sqlalchemy import make_url
from sqlmodel import Session

from cmr_vault.runtime import Runtime
from cmr_vault.settings import Settings
from tests.conftest import reads_real_time
from tests.load.harness import NOTICE, Customer, VaultProcess, connect, free_port, seed, vault_env
from tests.oauth.flows import Company

SECONDS = 8
CONNECTIONS = 256
PURPOSE = NOTICE["profile.email:read"][0]


def _wrk() -> str:
    path = shutil.which("wrk")
    if path:
        return path
    if os.environ.get("CI"):
        pytest.fail("wrk is not installed on CI: .ci/run must apt-get install it")
    pytest.skip("wrk is not installed (apt-get install wrk)")


@pytest.fixture
@reads_real_time
def connected(settings: Settings, runtime: Runtime, db_session: Session) -> tuple[
        list[Company], list[str]]:
    """One company and one customer, seeded before the vault starts."""
    return seed(runtime, db_session, companies=1, customers=1)


@pytest.fixture(params=[1, 2, 4], ids=lambda n: f"{n}-worker")
def vault(request: pytest.FixtureRequest, settings: Settings, database_url: str,
          connected: tuple[list[Company], list[str]], tmp_path: Path,
          ) -> Iterator[tuple[VaultProcess, Customer]]:
    workers: int = request.param
    if workers > 1 and database_url.startswith("sqlite"):
        pytest.skip("several workers on one SQLite file share its one write lock: one suffices")
    port = free_port()
    process = VaultProcess(vault_env(settings, f"http://127.0.0.1:{port}"), port, workers=workers,
                           log=tmp_path / "vault.log")
    process.start()
    shops, emails = connected
    try:
        yield process, connect(process.base_url, emails[0], shops[0])
    finally:
        process.stop()


def _health_during(base_url: str, stop: threading.Event, answers: list[int | str]) -> None:
    while not stop.wait(0.25):
        try:
            answers.append(httpx.get(f"{base_url}/health", timeout=5).status_code)
        except httpx.HTTPError as exc:
            answers.append(type(exc).__name__)


def _read(customer: Customer, base_url: str) -> httpx.Response:
    return httpx.get(f"{base_url}/api/v1/subjects/{customer.subject}/profile",
                     params={"fields": "email", "purpose": PURPOSE},
                     headers={"Authorization": f"Bearer {customer.token}"}, timeout=30)


def test_overload_is_shed_health_answers_and_service_comes_back(
    vault: tuple[VaultProcess, Customer], tmp_path: Path
) -> None:
    process, customer = vault
    script = tmp_path / "read.lua"
    script.write_text(f'wrk.headers["Authorization"] = "Bearer {customer.token}"\n'
                      # wrk counts answers by status: each one tallied for the report.
                      "statuses = {}\n"
                      "response = function(status) statuses[status] = "
                      "(statuses[status] or 0) + 1 end\n")
    url = (f"{process.base_url}/api/v1/subjects/{customer.subject}/profile?fields=email"
           f"&purpose={quote(PURPOSE)}")
    stop, health = threading.Event(), []
    watcher = threading.Thread(target=_health_during, args=(process.base_url, stop, health))
    watcher.start()
    try:
        load = subprocess.run([_wrk(), "-t2", f"-c{CONNECTIONS}", f"-d{SECONDS}s",
                               "--timeout", "30s", "-s", str(script), url],
                              capture_output=True, text=True, timeout=SECONDS + 120)
    finally:
        stop.set()
        watcher.join()
    print(f"\n{load.stdout}\nhealth during the load: {health}")

    total = int(re.search(r"(\d+) requests in", load.stdout).group(1))  # type: ignore[union-attr]
    refused = re.search(r"Non-2xx or 3xx responses: (\d+)", load.stdout)
    served = total - (int(refused.group(1)) if refused else 0)
    print(f"served {served} of {total} reads in {SECONDS} s, the rest shed with 503")
    assert served > 0, load.stdout
    assert health and all(status == 200 for status in health), health
    after = [_read(customer, process.base_url) for _ in range(20)]
    assert [answer.status_code for answer in after] == [200] * 20
    assert "Traceback" not in process.log_path.read_text()


@contextmanager
def _database_held(database_url: str) -> Iterator[None]:
    """Something outside the vault holds the lock every company read's audit entry needs."""
    if database_url.startswith("sqlite"):
        holder = sqlite3.connect(make_url(database_url).database or "", isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
    else:
        holder = psycopg.connect(database_url, autocommit=False)  # type: ignore[assignment]
        holder.execute("LOCK TABLE audit_head IN ACCESS EXCLUSIVE MODE")
    try:
        yield
    finally:
        holder.rollback()
        holder.close()


def test_a_request_beyond_the_queue_is_shed_at_once_with_retry_after(
    settings: Settings, database_url: str, connected: tuple[list[Company], list[str]],
    tmp_path: Path,
) -> None:
    """One turn and no queue: while one read holds the turn (stuck behind a lock), the other
    is refused at once; when the lock goes, the first is served."""
    port = free_port()
    env = {**vault_env(settings, f"http://127.0.0.1:{port}"), "CMR_VAULT_DATABASE_TURNS": "1",
           "CMR_VAULT_DATABASE_QUEUE": "0"}
    process = VaultProcess(env, port, workers=1, log=tmp_path / "vault.log")
    process.start()
    shops, emails = connected
    answers: queue.Queue[httpx.Response] = queue.Queue()
    try:
        customer = connect(process.base_url, emails[0], shops[0])
        with _database_held(database_url):
            threads = [threading.Thread(target=lambda: answers.put(
                _read(customer, process.base_url))) for _ in range(2)]
            for thread in threads:
                thread.start()
            shed = answers.get(timeout=60)
        for thread in threads:
            thread.join()
        served = answers.get(timeout=60)
    finally:
        process.stop()
    assert shed.status_code == 503, shed.text
    assert shed.headers["Retry-After"].isdigit()
    assert shed.headers["Content-Type"].startswith("application/problem+json")
    assert served.status_code == 200, served.text
