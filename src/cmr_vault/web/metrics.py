"""`GET /metrics`: what an operator watches to see a worker's memory stay flat as the log grows.

Prometheus text format, one process's view (scrape every worker, or behind one, any of them):
its resident memory, the audit log's size, and how many full tiles it caches (bounded, so its
memory does not follow the log). Nothing here names a customer or a company.
"""

from __future__ import annotations

import os
import resource

from litestar import Response, get

from cmr_vault.audit import transparency
from cmr_vault.deps import DbSession, RuntimeDep

_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def resident_bytes() -> int:
    """This process's resident set size now (Linux), or its peak where /proc is absent."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            return int(statm.read().split()[1]) * _PAGE_SIZE
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


@get("/metrics", tags=["operations"], sync_to_thread=True, media_type="text/plain")
def metrics(db_session: DbSession, runtime: RuntimeDep) -> Response[str]:
    """Resident memory, audit tree size and cached tiles of the worker that answers."""
    samples = [
        (
            "cmr_vault_process_resident_memory_bytes",
            "gauge",
            "Resident memory of this worker process.",
            resident_bytes(),
        ),
        (
            "cmr_vault_audit_tree_size",
            "gauge",
            "Entries in the audit log (leaves of its Merkle tree).",
            transparency.log_size(db_session),
        ),
        (
            "cmr_vault_audit_tile_cache_tiles",
            "gauge",
            "Full tiles (8 KiB each) this worker caches; bounded whatever the log's size.",
            len(runtime.audit_tree.tiles),
        ),
    ]
    text = "".join(
        f"# HELP {name} {help_text}\n# TYPE {name} {kind}\n{name} {value}\n"
        for name, kind, help_text, value in samples
    )
    return Response(
        text,
        media_type="text/plain; version=0.0.4; charset=utf-8",
        headers={"Cache-Control": "no-store"},
    )
