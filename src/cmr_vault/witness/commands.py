"""`cmr-vault witness key | serve`: run an independent witness for one or more logs.

A witness is only worth something when someone other than the log's operator runs it, so it
needs nothing from the vault: no database, no keyring, only its own key, its own state file
and the verifier keys of the logs it follows.
"""

from __future__ import annotations

import time
from pathlib import Path

import click

from cmr_vault.audit.checkpoint import CheckpointError
from cmr_vault.audit.cosignature import witness_verifier_key
from cmr_vault.witness.service import TrustedLog, Witness, load_or_create_key

NAME = click.option(
    "--name",
    required=True,
    help="The witness's key name, a schemeless URL such as witness.example/w1.",
)
KEY_FILE = click.option(
    "--key-file",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The witness's Ed25519 key (created 0600 if absent).",
)


@click.group("witness")
def witness_commands() -> None:
    """An independent C2SP tlog-witness that cosigns logs' checkpoints."""


@witness_commands.command("key")
@NAME
@KEY_FILE
def witness_key(name: str, key_file: Path) -> None:
    """Print the witness's verifier key (what a vault's CMR_VAULT_WITNESSES names)."""
    click.echo(witness_verifier_key(load_or_create_key(key_file), name))


@witness_commands.command("serve")
@NAME
@KEY_FILE
@click.option(
    "--state",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="SQLite file holding the newest checkpoint cosigned per log.",
)
@click.option(
    "--log",
    "logs",
    multiple=True,
    required=True,
    help="A log's verifier key (repeatable); its key name is the log's origin.",
)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=7380, show_default=True, type=int)
def witness_serve(
    name: str, key_file: Path, state: Path, logs: tuple[str, ...], host: str, port: int
) -> None:
    """Serve POST /add-checkpoint and GET /<origin hash>/checkpoint on one prefix."""
    import uvicorn

    from cmr_vault.witness.app import create_witness_app

    try:
        trusted = [TrustedLog.parse(key) for key in logs]
    except CheckpointError as exc:
        raise click.ClickException(f"not a log verifier key: {exc}") from exc
    witness = Witness(
        name=name,
        key=load_or_create_key(key_file),
        logs=trusted,
        state=state,
        now=lambda: int(time.time()),
    )
    click.echo(f"Witness {name}: {witness.verifier_key}", err=True)
    click.echo(f"Following: {', '.join(t.origin for t in trusted)}", err=True)
    uvicorn.run(
        create_witness_app(witness),
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        server_header=False,
    )
