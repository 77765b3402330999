"""Offline proofs that an entry is in the log: the C2SP tlog-proof text format.

A proof is the line `c2sp.org/tlog-proof@v1`, an `index <leaf index>` line (zero-based), the
inclusion path one base64 hash a line from the leaf's sibling up, a blank line, and the
checkpoint verbatim with the log's signature and any witness cosignatures
(https://c2sp.org/tlog-proof). With the log's key and the witnesses' keys it proves offline
that the log, as everyone relying on those witnesses sees it, holds the entry.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

HEADER = "c2sp.org/tlog-proof@v1"


class ProofFormatError(ValueError):
    """Text that is not a tlog-proof."""


@dataclass(frozen=True)
class TlogProof:
    """The parts of a tlog-proof: leaf index, inclusion path, checkpoint note."""

    index: int
    path: list[bytes]
    checkpoint: str

    def to_text(self) -> str:
        """The proof as text, ending with the checkpoint's final newline."""
        lines = [
            HEADER,
            f"index {self.index}",
            *(base64.b64encode(node).decode() for node in self.path),
        ]
        return "\n".join(lines) + "\n\n" + self.checkpoint


def parse_proof(text: str) -> TlogProof:
    """Read a tlog-proof; the optional `extra` line is accepted and ignored (unauthenticated)."""
    head, separator, checkpoint = text.partition("\n\n")
    if not separator:
        raise ProofFormatError("a tlog-proof has a blank line before its checkpoint")
    lines = head.split("\n")
    if lines[0] != HEADER:
        raise ProofFormatError(f"a tlog-proof starts with {HEADER!r}")
    rest = lines[1:]
    if rest and rest[0].startswith("extra "):
        rest = rest[1:]
    if not rest or not rest[0].startswith("index "):
        raise ProofFormatError("a tlog-proof names the leaf index")
    index_text = rest[0].removeprefix("index ")
    if not index_text.isdigit() or str(int(index_text)) != index_text:
        raise ProofFormatError("the leaf index is a decimal without leading zeroes")
    try:
        path = [base64.b64decode(line, validate=True) for line in rest[1:]]
    except binascii.Error as exc:
        raise ProofFormatError("an inclusion proof line is not base64") from exc
    if any(len(node) != 32 for node in path):
        raise ProofFormatError("an inclusion proof line is not a SHA-256 hash")
    return TlogProof(int(index_text), path, checkpoint)
