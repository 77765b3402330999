"""The load and fault harness: real vault processes on loopback, real HTTP, a set checker.

Companies read profile fields and push messages while customers narrow and renew their
consents. Every request is classified as `ok` (2xx), `refused` (a definite 4xx) or `info`
(no answer, a reset or a 5xx: the outcome is unknown). Afterwards the database must hold every
acknowledged write (Jepsen's set checker: lost = ∅), no refused push may exist as a message, no
message may exist twice, and `cmr-vault audit verify` must pass.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlmodel import Session, col, select

from cmr_vault.accounts import service as accounts_service
from cmr_vault.audit.models import AuditEntry
from cmr_vault.consent.models import ConsentRecord
from cmr_vault.db.engine import make_engine
from cmr_vault.db.session import unit_of_work
from cmr_vault.marketing import service as marketing_service
from cmr_vault.marketing.models import Message
from cmr_vault.runtime import Runtime
from cmr_vault.settings import Settings
from tests.factories import Browser, make_customer
from tests.oauth.flows import Company, get_code, introspect, redeem, refresh, register_company

SALES = "Tell you about sales"
NOTICE = {"profile.email:read": ["Send your order receipts"], "marketing.inbox": [SALES]}
SCOPES = list(NOTICE)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class VaultProcess:
    """`cmr-vault serve` (or `demo`) in its own process group, so SIGKILL takes every worker."""

    def __init__(self, env: dict[str, str], port: int, workers: int, log: Path,
                 command: str = "serve") -> None:
        self.env, self.port, self.workers, self.log_path = env, port, workers, log
        self.command = command
        self.base_url = f"http://127.0.0.1:{port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        workers = ["--workers", str(self.workers)] if self.command == "serve" else []
        with self.log_path.open("a") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "cmr_vault", self.command, "--port", str(self.port),
                 *workers],
                env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.wait_healthy()

    def wait_healthy(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"the vault exited: see {self.log_path}")
            try:
                if httpx.get(f"{self.base_url}/health", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"the vault did not become healthy: see {self.log_path}")

    def rss_mb(self) -> float:
        """Resident memory of every process in the server's group (the workers included)."""
        assert self.process is not None
        total = 0
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
                if int(fields[2]) == self.process.pid:  # the process group id
                    total += int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
            except (OSError, IndexError, ValueError):
                continue  # the process ended while we looked
        return round(total / 2**20, 1)

    def kill(self) -> None:
        """SIGKILL the whole process group: no clean shutdown, no flush."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()


def vault_env(settings: Settings, base_url: str) -> dict[str, str]:
    """The environment that points a `cmr-vault` process at the test's database and keys."""
    env = {**os.environ, "CMR_VAULT_DATA_DIR": str(settings.data_dir),
           "CMR_VAULT_DATABASE_URL": settings.database_url,
           "CMR_VAULT_KEYSTORE_URL": settings.keystore_url, "CMR_VAULT_BASE_URL": base_url,
           "CMR_VAULT_DELIVERY_INTERVAL_SECONDS": "1", "CMR_VAULT_JOB_ENGINE": "in-process",
           "CMR_VAULT_PUSHES_PER_MINUTE": "100000", "CMR_VAULT_TOKEN_REQUESTS_PER_MINUTE": "100000",
           "CMR_VAULT_LOG_LEVEL": "WARNING"}
    env.pop("CMR_VAULT_KEK", None)
    return env


@dataclass
class Customer:
    """A customer connected to one company, and what the company holds for them."""

    email: str
    company: Company
    browser: Browser
    token: str = ""
    subject: str = ""
    grant_id: str = ""
    refresh_token: str = ""
    renewing: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)


def seed(runtime: Runtime, session: Session, *, companies: int, customers: int) -> tuple[
        list[Company], list[str]]:
    """Companies allowed to read e-mail and push to the inbox, and customers (committed).

    The company rows are detached once loaded: worker threads read them, and a lazy refresh
    through the test's session would hold SQLite's write lock for the whole run.
    """
    shops = [register_company(session, runtime, name=f"Load Shop {n}", notice=NOTICE)
             for n in range(companies)]
    for shop in shops:
        session.refresh(shop.row)
        session.expunge(shop.row)
    session.rollback()
    emails = []
    for n in range(customers):
        email = f"load{n}@example.org"
        make_customer(session, runtime, email=email, profile={"email": email})
        emails.append(email)
    return shops, emails


def connect(base_url: str, email: str, company: Company) -> Customer:
    """Sign in, consent on the real consent screen, redeem the code: a live connection."""
    browser = Browser(httpx.Client(base_url=base_url, timeout=30))  # type: ignore[arg-type]
    assert browser.sign_in(email).status_code == 303
    code, verifier = get_code(browser, company, scopes=SCOPES, scope=" ".join(SCOPES))
    client: Any = browser.client
    tokens = redeem(client, company, code, verifier).json()
    token = tokens["access_token"]
    subject = introspect(client, company, token)["sub"]
    grants = client.get("/api/v1/grants", headers=company.auth()).json()["grants"]
    grant_id = next(g["grant_id"] for g in grants if g["subject"] == subject)
    return Customer(email, company, browser, token, subject, grant_id, tokens["refresh_token"])


def opt_in(runtime: Runtime, customers: list[Customer]) -> None:
    """Every customer opts in to their company's inbox messages (through the service).

    Its own write transaction (BEGIN IMMEDIATE on SQLite): a deferred one that reads first
    would lose to the live server's writers at once instead of waiting its turn.
    """
    with unit_of_work(runtime.engine) as session:
        for customer in customers:
            account = accounts_service.find_by_email(session, index_key=runtime.keyring.index_key,
                                                     email=customer.email)
            assert account is not None
            marketing_service.set_preference(
                session, runtime.consent_context(), cipher=runtime.cipher, account_id=account.id,
                change=marketing_service.PreferenceChange(
                    client_id=customer.company.client_id, channel="inbox", opted_in=True,
                    topics=[], cap_day=None, cap_week=None, cap_month=None, quiet_start=None,
                    quiet_end=None, paused_until=None))


@dataclass
class Journal:
    """Every request and how it ended, appended from many threads."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    requests: Counter[str] = field(default_factory=Counter)
    pushes: dict[tuple[str, str], str] = field(default_factory=dict)
    push_targets: dict[str, Customer] = field(default_factory=dict)
    reads_ok: Counter[str] = field(default_factory=Counter)
    consent_acks: Counter[str] = field(default_factory=Counter)
    server_errors: Counter[int] = field(default_factory=Counter)
    latencies: dict[str, list[float]] = field(default_factory=dict)

    def timed(self, kind: str, call: Callable[..., Any], *args: Any, **kwargs: Any
              ) -> int | None:
        """The status of one call, keeping how long an answered one took."""
        started = time.perf_counter()
        status = _status(call, *args, **kwargs)
        if status is not None:
            with self.lock:
                self.latencies.setdefault(kind, []).append(time.perf_counter() - started)
        return status

    def latency_ms(self) -> dict[str, dict[str, float]]:
        """p50, p95 and p99 of answered requests, per kind, in milliseconds."""
        figures = {}
        for kind, values in sorted(self.latencies.items()):
            ordered = sorted(values)
            figures[kind] = {f"p{q}": round(1000 * ordered[min(len(ordered) - 1,
                                                                 len(ordered) * q // 100)], 1)
                             for q in (50, 95, 99)}
        return figures

    def classify(self, kind: str, status: int | None) -> str:
        outcome = ("info" if status is None or status >= 500
                   else "ok" if status < 300 or status == 303 else "refused")
        with self.lock:
            self.requests[f"{kind} {outcome}"] += 1
            if status is not None and status >= 500:
                self.server_errors[status] += 1
        return outcome


def _status(call: Callable[..., Any], *args: Any, **kwargs: Any) -> int | None:
    """The status code of one call, or None when no answer came (connection lost, timeout)."""
    try:
        return int(call(*args, **kwargs).status_code)
    except (httpx.HTTPError, AssertionError):  # AssertionError: a form page did not come
        return None


def renew_token(base_url: str, customer: Customer, stale: str) -> None:
    """A fresh access token after a 401, as a real company gets one: refresh it, or, when the
    refresh token was spent without an answer (a crash between rotation and reply), ask the
    customer again. Access tokens live 5 minutes, so a long run needs this."""
    with customer.renewing:
        if customer.token != stale:
            return  # another thread renewed it already
        try:
            with httpx.Client(base_url=base_url, timeout=10) as client:
                answer = refresh(client, customer.company, customer.refresh_token)  # type: ignore[arg-type]
                if answer.status_code != 200:
                    code, verifier = get_code(customer.browser, customer.company, scopes=SCOPES,
                                              scope=" ".join(SCOPES))
                    answer = redeem(client, customer.company, code, verifier)  # type: ignore[arg-type]
                tokens = answer.json()
                customer.token, customer.refresh_token = (tokens["access_token"],
                                                          tokens["refresh_token"])
        except (httpx.HTTPError, AssertionError, KeyError, ValueError):
            return  # the vault is down: the next 401 tries again


def push_body(customer: Customer, key: str) -> dict[str, str]:
    """One inbox push for the customer, with its idempotency key."""
    return {"subject": customer.subject, "channel": "inbox", "topic": "sales",
            "purpose": SALES, "title": "Sale", "body": "Half price.", "idempotency_key": key}


def company_worker(base_url: str, customers: list[Customer], journal: Journal,
                   stop: threading.Event, seed_value: int) -> None:
    """Read and push for random customers of this company until told to stop."""
    rng = random.Random(seed_value)
    client = httpx.Client(base_url=base_url, timeout=10)
    n = 0
    while not stop.is_set():
        customer = rng.choice(customers)
        token = customer.token
        headers = {"Authorization": f"Bearer {token}"}
        if rng.random() < 0.5:
            status = journal.timed("read", client.get,
                                   f"/api/v1/subjects/{customer.subject}/profile",
                                   headers=headers, params={
                                       "fields": "email",
                                       "purpose": NOTICE["profile.email:read"][0]})
            if journal.classify("read", status) == "ok":
                with journal.lock:
                    journal.reads_ok[customer.company.client_id] += 1
        else:
            n += 1
            key = f"w{seed_value}-{n}"
            status = journal.timed("push", client.post, "/api/v1/pushes", headers=headers,
                                   json=push_body(customer, key))
            outcome = journal.classify("push", status)
            with journal.lock:
                journal.pushes[(customer.company.client_id, key)] = outcome
                journal.push_targets[key] = customer
        if status == 401:
            renew_token(base_url, customer, token)
        if status is None:
            stop.wait(0.25)  # the server is down: a real client backs off too
    client.close()


def customer_worker(customer: Customer, journal: Journal, stop: threading.Event) -> None:
    """Narrow the grant (withdraw e-mail) and give it back through consent, over and over."""
    while not stop.is_set():
        status = _status(customer.browser.submit, f"/connections/{customer.grant_id}/revoke",
                         {"scope": "profile.email:read"}, page="/connections")
        if journal.classify("consent", status) == "ok":
            with journal.lock:
                journal.consent_acks[customer.grant_id] += 1
        try:
            get_code(customer.browser, customer.company, scopes=SCOPES, scope=" ".join(SCOPES))
            outcome = "ok"
        except (AssertionError, httpx.HTTPError, KeyError):
            outcome = "info"
        journal.classify("consent", 200 if outcome == "ok" else None)
        if outcome == "ok":
            with journal.lock:
                journal.consent_acks[customer.grant_id] += 1
        stop.wait(0.05 if outcome == "ok" else 0.25)


@dataclass
class Report:
    """What the checker found."""

    requests: dict[str, int]
    acknowledged: int
    found: int
    lost: list[str]
    duplicates: int
    refused_delivered: int
    delivered_twice: int
    audit_verified: bool
    server_errors: dict[int, int]
    latency_ms: dict[str, dict[str, float]]

    def lines(self) -> str:
        return json.dumps({"requests": self.requests, "acknowledged_writes": self.acknowledged,
                           "server_errors": {str(k): v for k, v in self.server_errors.items()},
                           "latency_ms": self.latency_ms,
                           "writes_found": self.found, "lost": self.lost[:10],
                           "duplicate_messages": self.duplicates,
                           "refused_but_delivered": self.refused_delivered,
                           "delivered_twice": self.delivered_twice,
                           "audit_verified": self.audit_verified}, indent=2, sort_keys=True)


def check(database_url: str, journal: Journal, env: dict[str, str]) -> Report:
    """The set checker over everything acknowledged, then a full audit verification."""
    engine = make_engine(database_url, immediate=False)
    lost: list[str] = []
    acknowledged = found = 0
    with Session(engine) as session:
        messages = Counter((m.client_id, m.idempotency_key)
                           for m in session.exec(select(Message)).all())
        for (client_id, key), outcome in journal.pushes.items():
            if outcome == "ok":
                acknowledged += 1
                if messages[(client_id, key)]:
                    found += 1
                else:
                    lost.append(f"push {client_id}/{key}")
        refused_delivered = sum(1 for (c, k), o in journal.pushes.items()
                                if o == "refused" and messages[(c, k)])
        for grant_id, acks in journal.consent_acks.items():
            records = len(session.exec(select(ConsentRecord.id).where(
                ConsentRecord.grant_id == grant_id,
                col(ConsentRecord.change).in_(("narrowed", "renewed")))).all())
            acknowledged += acks
            found += min(acks, records)
            if records < acks:
                lost.append(f"consent {grant_id}: {acks} acknowledged, {records} recorded")
        for client_id, reads in journal.reads_ok.items():
            entries = len(session.exec(select(AuditEntry.seq).where(
                AuditEntry.action == "profile.read",
                AuditEntry.actor == f"company:{client_id}")).all())
            acknowledged += reads
            found += min(reads, entries)
            if entries < reads:
                lost.append(f"reads by {client_id}: {reads} answered, {entries} audited")
        deliveries = Counter(session.exec(select(AuditEntry.resource).where(
            AuditEntry.action == "push.delivered")).all())
    engine.dispose()
    verified = subprocess.run([sys.executable, "-m", "cmr_vault", "audit", "verify"], env=env,
                              capture_output=True, text=True, timeout=300)
    return Report(dict(journal.requests), acknowledged, found, lost,
                  sum(1 for n in messages.values() if n > 1), refused_delivered,
                  sum(1 for n in deliveries.values() if n > 1), verified.returncode == 0,
                  dict(journal.server_errors), journal.latency_ms())


def retry_unknown_pushes(base_url: str, journal: Journal) -> int:
    """Send every push whose outcome was unknown again, with the same idempotency key: the
    vault must answer as the first attempt would have, and store the message at most once."""
    retried = 0
    with httpx.Client(base_url=base_url, timeout=30) as client:
        for (client_id, key), outcome in list(journal.pushes.items()):
            if outcome != "info":
                continue
            customer = journal.push_targets[key]
            for _ in range(3):
                token = customer.token
                status = _status(client.post, "/api/v1/pushes", json=push_body(customer, key),
                                 headers={"Authorization": f"Bearer {token}"})
                if status != 401:
                    break
                renew_token(base_url, customer, token)
            # A 401 answers nothing about the push: its outcome stays unknown.
            journal.pushes[(client_id, key)] = journal.classify(
                "push retry", None if status == 401 else status)
            retried += 1
    return retried


# How long a load may outrun its `seconds` while the nemesis has not done its faults yet.
FAULT_GRACE_SECONDS = 180.0


def run_load(base_url: str, customers: list[Customer], journal: Journal, *, seconds: float,
             company_threads: int, nemesis: Callable[[threading.Event], None] | None = None,
             faults_done: Callable[[], bool] = lambda: True) -> None:
    """Companies and customers at work for `seconds`, with an optional nemesis alongside.

    On a busy machine a restart can take most of a short run, so the load goes on past
    `seconds` until `faults_done()` (at most `FAULT_GRACE_SECONDS` more): a fault test is judged
    on the faults it asked for, not on how fast the machine was.
    """
    stop = threading.Event()
    by_company: dict[str, list[Customer]] = {}
    for customer in customers:
        by_company.setdefault(customer.company.client_id, []).append(customer)
    groups = list(by_company.values())
    threads = [threading.Thread(target=company_worker, daemon=True,
                                args=(base_url, groups[n % len(groups)], journal, stop, n))
               for n in range(company_threads)]
    threads += [threading.Thread(target=customer_worker, daemon=True,
                                 args=(customer, journal, stop)) for customer in customers[:2]]
    if nemesis is not None:
        threads.append(threading.Thread(target=nemesis, args=(stop,), daemon=True))
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    deadline = time.monotonic() + FAULT_GRACE_SECONDS
    while not faults_done() and time.monotonic() < deadline:
        time.sleep(0.2)
    stop.set()
    for thread in threads:
        thread.join(timeout=60)
