"""Over HTTP with Debian's `wrk`: the vault's hot paths against a bare Litestar app, same run.

    python bench/http_throughput.py [--seconds 5] [--rounds 3] [--connections 64]
                                    [--postgres URL] [--workers 1 2]

For each database (SQLite, and PostgreSQL when `--postgres` is given) and each worker count, it
starts `cmr-vault serve` on a seeded vault and `bench/bare_app.py` with the same uvicorn
options, then loads them in alternating rounds (bare, company read, token introspection, …)
and prints each path's best round: requests per second, p99 latency, non-2xx answers, and the
ratio to the bare app of the same worker count. Printed, never asserted.
"""

from __future__ import annotations

import argparse
import base64
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import httpx
from sqlalchemy import create_engine, make_url, text

from seeded_vault import PURPOSE, SeededVault, seeded_vault

BENCH = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Figure:
    """One wrk round."""

    rate: float
    p99_ms: float
    non_2xx: int


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait(url: str, process: subprocess.Popen[bytes]) -> None:
    for _ in range(300):
        if process.poll() is not None:
            raise SystemExit(f"the server exited before answering {url}")
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"no answer from {url}")


def _start(command: list[str], env: dict[str, str], probe: str) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    _wait(probe, process)
    return process


def _stop(process: subprocess.Popen[bytes]) -> None:
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _wrk(url: str, script: Path, seconds: int, connections: int) -> Figure:
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script), url],
        capture_output=True, text=True, check=True).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p99 = re.search(r"\s99%\s+([\d.]+)(us|ms|s)\b", out)
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return Figure(rate, float(p99.group(1)) * _UNIT_MS[p99.group(2)] if p99 else float("nan"),
                  int(non_2xx.group(1)) if non_2xx else 0)


def _scripts(folder: Path, seeded: SeededVault) -> dict[str, tuple[str, Path]]:
    """Each path's URL and its wrk Lua script."""
    basic = base64.b64encode(f"{seeded.client_id}:{seeded.client_secret}".encode()).decode()
    scripts = {
        "bare app": ("/bare", ""),
        "company read": (
            f"/api/v1/subjects/{seeded.subject}/profile?fields=email&purpose={quote(PURPOSE)}",
            f'wrk.headers["Authorization"] = "Bearer {seeded.token}"\n'),
        "token introspection": (
            "/oauth/introspect",
            'wrk.method = "POST"\n'
            f'wrk.body = "token={seeded.token}"\n'
            'wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"\n'
            f'wrk.headers["Authorization"] = "Basic {basic}"\n'),
    }
    found = {}
    for name, (path, lua) in scripts.items():
        script = folder / f"{name.replace(' ', '_')}.lua"
        script.write_text(lua)
        found[name] = (path, script)
    return found


def _postgres_database(admin_url: str) -> tuple[str, str]:
    name = f"cmr_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(make_url(admin_url).set(database="postgres"),
                          isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return name, make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def _drop_postgres_database(admin_url: str, name: str) -> None:
    admin = create_engine(make_url(admin_url).set(database="postgres"),
                          isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _measure(label: str, database_url: str, workers: list[int], args: argparse.Namespace
             ) -> dict[tuple[str, int], Figure]:
    """Best round per path and worker count on one database."""
    best: dict[tuple[str, int], Figure] = {}
    with tempfile.TemporaryDirectory() as tmp:
        seeded = seeded_vault(Path(tmp) / "var", database_url)
        seeded.runtime.dispose()
        scripts = _scripts(Path(tmp), seeded)
        env = {**os.environ, "CMR_VAULT_DATA_DIR": str(Path(tmp) / "var"),
               "CMR_VAULT_DATABASE_URL": database_url, "CMR_VAULT_LOG_LEVEL": "WARNING",
               "CMR_VAULT_TOKEN_REQUESTS_PER_MINUTE": "100000000",
               "CMR_VAULT_PUSHES_PER_MINUTE": "100000000", "PYTHONPATH": str(BENCH)}
        for count in workers:
            vault_port, bare_port = _free_port(), _free_port()
            env["CMR_VAULT_BASE_URL"] = f"http://127.0.0.1:{vault_port}"
            vault = _start([sys.executable, "-m", "cmr_vault", "serve", "--port",
                            str(vault_port), "--workers", str(count)], env,
                           f"http://127.0.0.1:{vault_port}/health")
            bare = _start([sys.executable, str(BENCH / "bare_app.py"), str(bare_port),
                           str(count)], env, f"http://127.0.0.1:{bare_port}/bare")
            try:
                for _ in range(args.rounds):
                    for name, (path, script) in scripts.items():
                        port = bare_port if name == "bare app" else vault_port
                        figure = _wrk(f"http://127.0.0.1:{port}{path}", script, args.seconds,
                                      args.connections)
                        if (name, count) not in best or figure.rate > best[name, count].rate:
                            best[name, count] = figure
            finally:
                _stop(vault)
                _stop(bare)
    _report(label, best, workers)
    return best


def _report(label: str, best: dict[tuple[str, int], Figure], workers: list[int]) -> None:
    print(f"\n{label}")
    print(f"{'path':<22}{'workers':>8}{'req/s':>10}{'p99 ms':>10}{'non-2xx':>9}"
          f"{'of bare':>9}{'vs 1 worker':>13}")
    for (name, count), figure in sorted(best.items(), key=lambda item: (item[0][0], item[0][1])):
        bare = best["bare app", count].rate
        one = best.get((name, workers[0]))
        scaling = (f"{figure.rate / one.rate:.2f}×"
                   if one and one.rate and count != workers[0] else "")
        print(f"{name:<22}{count:>8}{figure.rate:>10,.0f}{figure.p99_ms:>10.1f}"
              f"{figure.non_2xx:>9}{figure.rate / bare if bare else 0:>8.1%}{scaling:>13}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--postgres", default=os.environ.get("CMR_VAULT_TEST_POSTGRES_URL", ""),
                        help="also measure on this PostgreSQL server (a database is created)")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install wrk")
    print(f"wrk, {args.connections} connections, {args.seconds:g} s a round, best of "
          f"{args.rounds} alternating rounds")
    _measure("SQLite", "", args.workers, args)
    if args.postgres:
        name, url = _postgres_database(args.postgres)
        try:
            _measure("PostgreSQL", url, args.workers, args)
        finally:
            _drop_postgres_database(args.postgres, name)


if __name__ == "__main__":
    main()
