"""Company read throughput against a bare Litestar endpoint, in the same run.

    python bench/company_reads.py [--requests 2000]

Both run in-process through Litestar's TestClient on the same machine, one request at a time:
the bare endpoint returns a constant dict; the company read resolves the bearer token, loads
the grant, asks the policy engine about each field, appends the audit entry (durable before
the response: SQLite WAL, synchronous=FULL) and opens the field. Printed, never asserted.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from litestar import Litestar, get
from litestar.testing import TestClient

from cmr_vault.app import create_app
from seeded_vault import PURPOSE, seeded_vault


@get("/bare", sync_to_thread=False)
def bare() -> dict[str, object]:
    """The baseline: routing, serialisation and middleware of a minimal app, nothing else."""
    return {"subject": "s", "purpose": PURPOSE, "fields": {"email": "a@example.org"}}


def _rate(client: TestClient[Litestar], path: str, count: int, **kwargs: object) -> float:
    assert client.get(path, **kwargs).status_code == 200  # type: ignore[arg-type]
    start = time.perf_counter()
    for _ in range(count):
        client.get(path, **kwargs)  # type: ignore[arg-type]
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        seeded = seeded_vault(Path(tmp))
        with TestClient(Litestar([bare])) as plain:
            baseline = _rate(plain, "/bare", args.requests)
        with TestClient(create_app(seeded.settings, runtime=seeded.runtime),
                        base_url=seeded.settings.issuer) as vault:
            reads = _rate(vault, f"/api/v1/subjects/{seeded.subject}/profile", args.requests,
                          params={"fields": "email", "purpose": PURPOSE},
                          headers={"Authorization": f"Bearer {seeded.token}"})
    print(f"bare Litestar endpoint: {baseline:,.0f} req/s ({1e6 / baseline:.0f} µs/request)")
    print(f"company read (token, grant, policy, durable audit, decrypt): {reads:,.0f} req/s "
          f"({1e6 / reads:.0f} µs/request); {baseline / reads:.1f}× the bare endpoint's cost")


if __name__ == "__main__":
    main()
