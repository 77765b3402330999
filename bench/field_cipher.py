"""Field sealing cost against raw AES-256-GCM, measured in the same run.

    python bench/field_cipher.py [--fields 2000] [--rounds 5]

Prints microseconds per field for: raw AESGCM.encrypt/decrypt on the same bytes (the floor), our
`seal`/`open_sealed` with an already-opened data key (header, AAD), and `FieldCipher` round trips
that also read and unwrap the data key from the key store (what a profile read pays). Figures
are printed, never asserted: these machines are shared and noisy, so compare the ratios.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import create_engine

from cmr_vault.crypto.data_keys import DataKeyStore
from cmr_vault.crypto.epochs import EpochKeyFile
from cmr_vault.crypto.field_cipher import FieldCipher, open_sealed, seal
from cmr_vault.crypto.kek import StaticKeyProvider

VALUE = "alice.example@example.org"


def best_of(rounds: int, run: Callable[[], None], items: int) -> float:
    """Best per-item time in microseconds over `rounds` runs (least disturbed by noise)."""
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        run()
        times.append((time.perf_counter() - start) / items * 1e6)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--fields", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    n = args.fields

    key = AESGCM(os.urandom(32))
    raw_nonce = os.urandom(12)
    raw_blob = key.encrypt(raw_nonce, VALUE.encode(), b"aad")

    def raw_encrypt() -> None:
        for _ in range(n):
            key.encrypt(os.urandom(12), VALUE.encode(), b"aad")

    def raw_decrypt() -> None:
        for _ in range(n):
            key.decrypt(raw_nonce, raw_blob, b"aad")

    with tempfile.TemporaryDirectory() as tmp:
        engine = create_engine(f"sqlite:///{Path(tmp) / 'keystore.db'}")
        store = DataKeyStore(engine=engine, provider=StaticKeyProvider({"k": os.urandom(32)}, "k"),
                             epochs=EpochKeyFile(Path(tmp) / "epoch-keys.json"),
                             max_encryptions=2**28)
        store.create_schema()
        store.create("owner")
        data_key = store.for_encryption("owner")
        blob = seal(data_key, "email", VALUE)
        cipher = FieldCipher(store, name_key=os.urandom(32))
        sealed_profile = cipher.seal_fields("owner", {f"custom.f{i}": VALUE for i in range(12)})

        def ours_seal() -> None:
            for _ in range(n):
                seal(data_key, "email", VALUE)

        def ours_open() -> None:
            for _ in range(n):
                open_sealed(data_key, "email", blob)

        def profile_read() -> None:
            for _ in range(n // 12):
                cipher.open_fields("owner", sealed_profile)

        results = {
            "raw AES-GCM encrypt": best_of(args.rounds, raw_encrypt, n),
            "raw AES-GCM decrypt": best_of(args.rounds, raw_decrypt, n),
            "seal (opened data key)": best_of(args.rounds, ours_seal, n),
            "open (opened data key)": best_of(args.rounds, ours_open, n),
            "12-field profile read incl. key store + unwrap (per field)": best_of(
                args.rounds, profile_read, (n // 12) * 12),
        }
        engine.dispose()
    floor_enc, floor_dec = results["raw AES-GCM encrypt"], results["raw AES-GCM decrypt"]
    print(f"{'operation':62} {'µs/field':>9} {'× raw':>7}")
    for name, micros in results.items():
        floor = floor_enc if "encrypt" in name or name.startswith("seal") else floor_dec
        print(f"{name:62} {micros:9.2f} {micros / floor:7.1f}")
    print(f"(best of {args.rounds} runs of {n} fields each)")


if __name__ == "__main__":
    main()
