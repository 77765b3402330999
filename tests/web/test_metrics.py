"""`/metrics`: a worker's memory, the audit tree's size and the bounded tile cache, for an
operator's scraper."""

from __future__ import annotations

from litestar import Litestar
from litestar.testing import TestClient
from sqlmodel import Session

from cmr_vault.audit import service as audit_service
from cmr_vault.audit.service import AuditEvent
from tests.conftest import ClockUnderTest


def _samples(text: str) -> dict[str, float]:
    return {
        line.split()[0]: float(line.split()[1])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }


def test_metrics_show_resident_memory_and_the_audit_tree_size(
    client: TestClient[Litestar],
    db_session: Session,
    clock: ClockUnderTest,
) -> None:
    audit_service.record_many(
        db_session,
        clock=clock,
        events=[AuditEvent(actor="company:acme", action="profile.read") for _ in range(300)],
    )
    db_session.commit()
    client.get("/audit/tile/0/000")

    answer = client.get("/metrics")

    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples = _samples(answer.text)
    assert samples["cmr_vault_audit_tree_size"] == 300
    assert samples["cmr_vault_process_resident_memory_bytes"] > 10 * 2**20
    assert samples["cmr_vault_audit_tile_cache_tiles"] == 1
