"""The witness over HTTP: `POST /add-checkpoint` and `GET /<origin hash>/checkpoint`.

One prefix serves as both the submission and the monitoring prefix (C2SP tlog-witness allows
it). The answers are plain text, as the specification writes them, not problem documents.
"""

from __future__ import annotations

from litestar import Litestar, Response, get, post
from litestar.params import FromPath, RawBody

from cmr_vault.witness.service import Answer, Witness

_NO_STORE = {"Cache-Control": "no-store"}


def _response(answer: Answer) -> Response[str]:
    return Response(
        answer.body, status_code=answer.status, media_type=answer.media_type, headers=_NO_STORE
    )


def create_witness_app(witness: Witness) -> Litestar:
    """The witness's HTTP interface, for `cmr-vault witness serve` and for tests."""

    @post("/add-checkpoint", sync_to_thread=True)
    def add_checkpoint(body: RawBody) -> Response[str]:
        """Cosign a checkpoint consistent with the last one cosigned for its log."""
        return _response(witness.add_checkpoint(body))

    @get("/{hashed_origin:str}/checkpoint", sync_to_thread=True)
    def latest(hashed_origin: FromPath[str]) -> Response[str]:
        """The newest checkpoint cosigned for a log, with the log's and this witness's
        signatures (the monitoring API)."""
        note = witness.latest(hashed_origin)
        if note is None:
            return _response(Answer(404, "no checkpoint cosigned for this log\n"))
        return _response(Answer(200, note))

    @get("/", sync_to_thread=False)
    def about() -> Response[str]:
        """The witness's verifier key, for whoever configures it."""
        return _response(Answer(200, witness.verifier_key + "\n"))

    return Litestar(route_handlers=[add_checkpoint, latest, about], openapi_config=None)
