"""The baseline of `http_throughput.py`: a bare Litestar app on the vault's own server settings.

    python bench/bare_app.py PORT WORKERS
"""

from __future__ import annotations

import sys

import uvicorn
from litestar import Litestar, get

from cmr_vault.web.transport import MAX_HEAD_BYTES, BoundedHeadH11Protocol


@get("/bare", sync_to_thread=False)
def bare() -> dict[str, object]:
    """Routing, serialisation and middleware of a minimal app, nothing else."""
    return {"subject": "s", "purpose": "p", "fields": {"email": "a@example.org"}}


app = Litestar([bare])

if __name__ == "__main__":
    # The same uvicorn options as `cmr-vault serve` (cli._serve).
    uvicorn.run("bare_app:app", host="127.0.0.1", port=int(sys.argv[1]),
                workers=int(sys.argv[2]), proxy_headers=True, server_header=False,
                log_level="info", http=BoundedHeadH11Protocol,
                h11_max_incomplete_event_size=MAX_HEAD_BYTES + 1024)
