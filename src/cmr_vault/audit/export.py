"""`audit export`: the log as JSONL (with what is needed to verify it) or CSV (for spreadsheets)."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from typing import Any, TextIO

from sqlmodel import Session, col, select

from cmr_vault.audit.models import AuditCheckpoint
from cmr_vault.audit.service import LoggedEntry, iter_entry_rows
from cmr_vault.audit.verify import EXPORT_FORMAT
from cmr_vault.clock import utc_iso

COLUMNS = ("seq", "recorded_at", "actor", "action", "subject", "resource", "purpose", "outcome",
           "details", "prev_hash", "entry_hash", "leaf_hash")


def entry_record(entry: LoggedEntry) -> dict[str, Any]:
    """One entry as a JSON-ready dict (details as an object, time in UTC)."""
    record = {name: getattr(entry, name) for name in COLUMNS}
    record["recorded_at"] = utc_iso(entry.recorded_at)
    record["details"] = json.loads(entry.details)
    return record


def write_jsonl(session: Session, out: TextIO, *, verifier_key: str, size: int,
                progress: Callable[[int], None] | None = None) -> int:
    """Header line (format, verifier key, signed heads) then one entry per line."""
    heads = session.exec(
        select(AuditCheckpoint).where(col(AuditCheckpoint.size) <= size)
        .order_by(col(AuditCheckpoint.size))
    ).all()
    header = {
        "format": EXPORT_FORMAT, "verifier_key": verifier_key, "size": size,
        "checkpoints": [{"size": h.size, "root_hash": h.root_hash, "note": h.note}
                        for h in heads],
    }
    out.write(json.dumps(header, ensure_ascii=False) + "\n")
    written = 0
    for entry in iter_entry_rows(session):
        if entry.seq > size:
            break
        out.write(json.dumps(entry_record(entry), ensure_ascii=False, sort_keys=True) + "\n")
        written += 1
        if progress and written % 10_000 == 0:
            progress(written)
    return written


def write_csv(session: Session, out: TextIO, *, size: int) -> int:
    """The same entries as CSV; details stay a JSON string in one column."""
    writer = csv.DictWriter(out, fieldnames=COLUMNS)
    writer.writeheader()
    written = 0
    for entry in iter_entry_rows(session):
        if entry.seq > size:
            break
        record = entry_record(entry)
        record["details"] = json.dumps(record["details"], ensure_ascii=False, sort_keys=True)
        writer.writerow(record)
        written += 1
    return written
