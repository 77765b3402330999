"""One reading of the audit log for the auditor's company report and the company's own figures.

Both walk a company's entries here and count pushes with `push_count`, so the two can never
disagree on what a push is: the entry that decided it (`push.decided`). A consent check is
counted as a check, a delivery as that push being sent; the steps in between count nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from enum import StrEnum

from sqlalchemy import ColumnElement, or_
from sqlmodel import Session, col, select

from cmr_vault.audit.actions import PushAction
from cmr_vault.audit.models import AuditEntry

BATCH = 5000


class PushCount(StrEnum):
    """What a push-related entry adds to the figures."""

    ACCEPTED = "accepted"
    DEFERRED = "deferred"
    REFUSED = "refused"
    SENT = "sent"
    CHECKED = "consent checks"


def push_count(action: str, outcome: str) -> PushCount | None:
    """The one figure a push-related entry counts towards, or None for the steps in between."""
    if action == PushAction.DECIDED:
        return {"allow": PushCount.ACCEPTED, "defer": PushCount.DEFERRED}.get(
            outcome, PushCount.REFUSED)
    if action == PushAction.DELIVERED:
        return PushCount.SENT
    if action == PushAction.CHECKED:
        return PushCount.CHECKED
    return None


def company_clause(company: str) -> ColumnElement[bool]:
    """Entries by the company, about it, or naming it in their details."""
    return or_(
        col(AuditEntry.actor) == f"company:{company}",
        col(AuditEntry.resource) == f"company:{company}",
        col(AuditEntry.details).contains(json.dumps(company)),
    )


def company_entries(session: Session, company: str, *, since: datetime | None = None,
                    until: datetime | None = None) -> Iterator[AuditEntry]:
    """Every entry concerning `company` in the period, newest first, read in batches."""
    query = select(AuditEntry).where(company_clause(company))
    if since:
        query = query.where(col(AuditEntry.recorded_at) >= since)
    if until:
        query = query.where(col(AuditEntry.recorded_at) < until)
    before = None
    while True:
        page = query if before is None else query.where(col(AuditEntry.seq) < before)
        batch = session.exec(page.order_by(col(AuditEntry.seq).desc()).limit(BATCH)).all()
        yield from batch
        if len(batch) < BATCH:
            return
        before = batch[-1].seq
