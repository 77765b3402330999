"""The `cmr-vault` command (also `python -m cmr_vault`).

Each subcommand reads the same settings as the server (`CMR_VAULT_*`, `.env`), so what the CLI
does and what the server sees never disagree.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import secrets
import socket
import sys
import time
from datetime import timedelta
from pathlib import Path

import click
import httpx
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn
from rich.table import Table
from sqlmodel import Session

from cmr_vault.accounts import service as accounts_service
from cmr_vault.accounts.models import Role
from cmr_vault.audit import cosigning, transparency, witness, witness_checks
from cmr_vault.audit import service as audit_service
from cmr_vault.audit.checkpoint import (
    Checkpoint,
    CheckpointError,
    parse_verifier_key,
    verify_checkpoint,
)
from cmr_vault.audit.cosignature import WitnessKey
from cmr_vault.audit.export import write_csv, write_jsonl
from cmr_vault.audit.signer import check_not_rolled_back, cosign_newest
from cmr_vault.audit.verify import VerifyReport, read_export, verify, verify_database
from cmr_vault.audit.witness import RolledBackError
from cmr_vault.consent import receipts as consent_receipts
from cmr_vault.consent.events import EventDelivery
from cmr_vault.crypto.blind_index import subject_pseudonym
from cmr_vault.crypto.kek import KeyUnavailableError
from cmr_vault.crypto.keyring import (
    Keyring,
    KeyringError,
    new_signing_generation,
    read_keyring,
    write_keyring,
)
from cmr_vault.db import migrate
from cmr_vault.db.engine import make_engine
from cmr_vault.db.session import unit_of_work
from cmr_vault.demo import DEMO_AUDITOR, DEMO_EMAIL, DEMO_PASSWORD, seed_demo_data
from cmr_vault.errors import DomainError
from cmr_vault.marketing import jobs
from cmr_vault.marketing.service import DeliveryReport
from cmr_vault.marketing.worker import campaign_pass, deliver_pass, event_pass, lifecycle_pass
from cmr_vault.oauth import jwks, sectors
from cmr_vault.oauth import service as oauth_service
from cmr_vault.oauth.models import ClientStatus
from cmr_vault.policy.commands import policy
from cmr_vault.runtime import Runtime
from cmr_vault.settings import Settings, UnsafeSettingsError, check_startup_safety, get_settings
from cmr_vault.vault.shredding import shred_once
from cmr_vault.witness.commands import witness_commands

console = Console(stderr=True)


def _settings() -> Settings:
    return get_settings()


def initialise(settings: Settings) -> bool:
    """Create the keyring (mode 0600), the database schema and the key store; idempotent.

    Returns True when a new keyring was created.
    """
    created = False
    key_file = settings.resolved_key_file
    if not key_file.exists():
        # With an RSA key, so id_tokens can be RS256 (OpenID Connect's default) from the start.
        write_keyring(key_file, Keyring.generate().with_id_token_keys(
            (new_signing_generation(jwks.new_rsa_key()),)))
        created = True
    upgrade_database(settings)
    return created


def upgrade_database(settings: Settings, revision: str = "head") -> None:
    """Apply migrations with the customers' keys at hand (when the keyring exists): some
    migrations convert sealed data, such as 0009 sealing profile field names."""
    engine = make_engine(settings.resolved_database_url, immediate=False)
    _add_id_token_keys(settings)
    runtime = Runtime.build(settings) if settings.resolved_key_file.exists() else None
    try:
        if runtime is not None:
            runtime.data_keys.create_schema()
        migrate.upgrade(engine, revision, cipher=runtime.cipher if runtime else None)
    except migrate.MigrationNeedsKeys as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        if runtime is not None:
            runtime.dispose()
        engine.dispose()


def _add_id_token_keys(settings: Settings) -> None:
    """A keyring made before OpenID Connect gets its first id_token keys (before any worker
    starts, so every worker signs with the same ones)."""
    key_file = settings.resolved_key_file
    if key_file.exists() and not (keyring := read_keyring(key_file)).id_token_keys:
        write_keyring(key_file, keyring.with_id_token_keys(
            (new_signing_generation(jwks.new_rsa_key()),)))


@click.group()
@click.version_option(package_name="cmr-vault")
def main() -> None:
    """CMR Vault: a consent-first customer-managed relationship vault."""


main.add_command(policy)
main.add_command(witness_commands)


@main.command()
def init() -> None:
    """Create the keyring, the database and the key store (safe to run again)."""
    settings = _settings()
    try:
        created = initialise(settings)
    except KeyUnavailableError as exc:
        raise click.ClickException(str(exc)) from exc
    state = "created" if created else "kept existing"
    console.print(f"[green]Initialised.[/] Keyring {state}: {settings.resolved_key_file} (0600)")
    console.print(f"Database: {make_engine(settings.resolved_database_url).url!r}")


def _listen(host: str, port: int, command: str) -> socket.socket:
    """Bind the listening socket before anything is printed, so a taken port is said plainly."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise click.ClickException(
                f"Port {port} on {host} is already in use (another vault or program listens "
                f"there). Choose a free port with --port, for example: cmr-vault {command} "
                f"--port {port + 1}") from exc
        raise click.ClickException(f"Cannot listen on {host}:{port}: {exc.strerror}") from exc
    sock.set_inheritable(True)
    return sock


def _settings_for(host: str, port: int) -> Settings:
    """The settings, with the public URL defaulting to the address the vault listens on.

    Set in the environment, so every worker process that uvicorn starts reads the same one.
    """
    if not _settings().base_url:
        os.environ["CMR_VAULT_BASE_URL"] = f"http://{host}:{port}"
        get_settings.cache_clear()
        console.print(f"Public URL: {_settings().issuer}/ (the address it listens on; set "
                      "CMR_VAULT_BASE_URL when people reach the vault by another)")
    return _settings()


def _serve(settings: Settings, listener: socket.socket, workers: int) -> None:
    import uvicorn

    from cmr_vault.web.transport import MAX_HEAD_BYTES, BoundedHeadH11Protocol

    try:
        check_startup_safety(settings)
    except UnsafeSettingsError as exc:
        raise click.ClickException(str(exc)) from exc
    upgrade_database(settings)
    runtime = Runtime.build(settings)
    try:
        runtime.data_keys.create_schema()
        check_not_rolled_back(runtime)
    except (RolledBackError, KeyUnavailableError) as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        runtime.dispose()
    uvicorn.run(
        "cmr_vault.app:create_app_from_env",
        factory=True,
        fd=listener.fileno(),
        workers=workers,
        proxy_headers=True,
        server_header=False,
        log_level="info",
        # An access line names the client's IP address and the path: personal data (README).
        access_log=False,
        # h11 with a size (431) and a deadline (408) for every request head: see web.transport.
        http=BoundedHeadH11Protocol,
        h11_max_incomplete_event_size=MAX_HEAD_BYTES + 1024,
    )


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64))
def serve(host: str, port: int, workers: int) -> None:
    """Apply pending migrations and serve the vault."""
    listener = _listen(host, port, "serve")
    settings = _settings_for(host, port)
    if settings.demo and not settings.resolved_key_file.exists():
        initialise(settings)
    _serve(settings, listener, workers)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
def demo(host: str, port: int) -> None:
    """Initialise, add demo data and serve on this machine only."""
    listener = _listen(host, port, "demo")
    os.environ["CMR_VAULT_DEMO"] = "1"
    get_settings.cache_clear()
    settings = _settings_for(host, port)
    initialise(settings)
    runtime = Runtime.build(settings)
    with unit_of_work(runtime.engine) as session:
        seed_demo_data(session, runtime)
    runtime.dispose()
    url = settings.issuer
    console.print(f"\n[bold green]CMR Vault demo[/] is starting at [bold]{url}/[/]")
    console.print(f"Sign in as [bold]{DEMO_EMAIL}[/] with password [bold]{DEMO_PASSWORD}[/]"
                  f" (customer), or as [bold]{DEMO_AUDITOR}[/] with the same password"
                  " (auditor)\n")
    click.echo(f"Open {url}/ in your browser", err=False)
    sys.stdout.flush()
    _serve(settings, listener, 1)


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@click.argument("revision", default="head")
def db_upgrade(revision: str) -> None:
    """Apply migrations up to REVISION (default: the newest)."""
    settings = _settings()
    upgrade_database(settings, revision)
    console.print(f"[green]Database at {revision}.[/]")


@main.group()
def keys() -> None:
    """Key-encryption keys and the epoch keys that seal data keys."""


@keys.command("rotate")
def keys_rotate() -> None:
    """Make a new KEK active and re-wrap every data key under it, while the vault serves."""
    settings = _settings()
    key_file = settings.resolved_key_file
    try:
        old = read_keyring(key_file)
    except KeyringError as exc:
        raise click.ClickException(str(exc)) from exc
    if settings.kek is None:
        write_keyring(key_file, old.with_new_kek())
    runtime = Runtime.build(settings)
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        task = progress.add_task("Re-wrapping data keys", total=None)
        report = runtime.data_keys.rewrap_all(
            progress=lambda done, total: progress.update(task, completed=done, total=total)
        )
    usage = runtime.data_keys.kek_usage()
    if settings.kek is None:
        unused = set(old.keks) - set(usage)
        write_keyring(key_file, read_keyring(key_file).retiring(unused))
    with unit_of_work(runtime.engine) as session:
        audit_service.record(
            session,
            clock=runtime.clock,
            event=audit_service.AuditEvent(
                actor="operator:cli",
                action="keys.rotated",
                resource="kek",
                details={"active_kek": report.active_kek_id, "rewrapped": report.rewrapped},
            ),
        )
    runtime.dispose()
    console.print(
        f"[green]Done.[/] Active KEK {report.active_kek_id}; re-wrapped {report.rewrapped}, "
        f"{report.already_current} were current. Keys per KEK: {usage or 'none'}"
    )


@keys.command("rotate-id-token")
def keys_rotate_id_token() -> None:
    """Sign id_tokens with a new key generation; the old keys stay published in the JWK set
    until every id_token they signed has expired, then the next rotation drops them."""
    settings = _settings()
    runtime = Runtime.build(settings)
    try:
        rotated = jwks.rotated(read_keyring(settings.resolved_key_file), runtime.clock.now())
        write_keyring(settings.resolved_key_file, rotated)
        active = jwks.active(rotated)
        with unit_of_work(runtime.engine) as session:
            audit_service.record(session, clock=runtime.clock, event=audit_service.AuditEvent(
                actor="operator:cli", action="keys.id_token_rotated", resource="id_token_keys",
                details={"active": active.kid, "published": len(rotated.id_token_keys)}))
    except KeyringError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        runtime.dispose()
    console.print(f"[green]Done.[/] id_tokens are signed by generation {active.kid} "
                  f"({', '.join(jwks.algorithms_of(active))}); older keys stay published for "
                  f"{int(jwks.ID_TOKEN_LIFETIME.total_seconds() // 60)} minutes.")


@keys.command("shred-now")
def keys_shred_now() -> None:
    """Destroy now the epoch key sealing erased customers' key residue (after re-sealing the
    remaining data keys under a new one), instead of waiting for `erasure_shred_seconds`."""
    runtime = Runtime.build(_settings())
    runtime.data_keys.create_schema()
    try:
        report = shred_once(runtime, force=True, actor="operator:cli")
    finally:
        runtime.dispose()
    console.print(
        f"[green]Done.[/] Epoch {report.current_epoch} is current; re-sealed {report.resealed} "
        f"data keys; destroyed {len(report.destroyed)} epoch key(s)."
    )


@main.group()
def audit() -> None:
    """The audit log."""


def _progress_bar() -> Progress:
    return Progress(
        "[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), console=console,
    )


def _verifier_key(runtime: Runtime) -> str:
    return transparency.verifier_key(runtime.keyring.signing_key, runtime.log_origin)


def _held_checkpoint(path: Path | None, key: str) -> Checkpoint | None:
    if path is None:
        return None
    name, public_key = parse_verifier_key(key)
    try:
        return verify_checkpoint(path.read_text(encoding="utf-8"), public_key, name)
    except CheckpointError as exc:
        raise click.ClickException(f"{path}: not a checkpoint signed by this log ({exc})") from exc


def _report(report: VerifyReport) -> None:
    if report.ok:
        console.print(f"[green]Verified.[/] {report.entries} entries, "
                      f"{report.checkpoints} signed checkpoints: every hash, root and signature "
                      "checks out.")
        return
    if report.first_broken_seq is not None:
        console.print(f"[red]First broken entry: {report.first_broken_seq}[/]")
    for problem in report.problems:
        console.print(f"[red]✗[/] {problem}")
    raise SystemExit(1)


@audit.command("verify")
@click.option("--export", "export_file", type=click.Path(exists=True, dir_okay=False,
              path_type=Path), help="Verify an export file instead of the live database.")
@click.option("--held", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A signed checkpoint you kept earlier: detects truncation, rollback, forks.")
@click.option("--verifier-key", "key", help="The log's verifier key (default: this vault's).")
def audit_verify(export_file: Path | None, held: Path | None, key: str | None) -> None:
    """Recompute every hash, the Merkle tree and every signature; name the first break."""
    with _progress_bar() as progress:
        task = progress.add_task("Verifying entries", total=None)

        def advance(done: int) -> None:
            progress.update(task, completed=done)

        try:
            if export_file is not None:
                exported_key, heads, entries = read_export(export_file)
                key = key or exported_key
                report = verify(entries, heads, verifier_key=key,
                                held=_held_checkpoint(held, key), progress=advance)
            else:
                runtime = Runtime.build(_settings())
                key = key or _verifier_key(runtime)
                with unit_of_work(runtime.engine) as session:
                    progress.update(task, total=transparency.log_size(session))
                    report = verify_database(session, verifier_key=key,
                                             held=_held_checkpoint(held, key), progress=advance)
                    report.problems.extend(_witness_problems(session, runtime, key))
                runtime.dispose()
        except (ValueError, CheckpointError) as exc:
            raise click.ClickException(str(exc)) from exc
    _report(report)


def _witness_problems(session: Session, runtime: Runtime, key: str) -> list[str]:
    """The configured witnesses' views and cosignatures checked against the log."""
    witnesses = runtime.witnesses
    if not witnesses:
        return []
    name, public_key = parse_verifier_key(key)
    with httpx.Client() as client:
        views, unreachable = witness_checks.fetch_views(
            witnesses, origin=runtime.log_origin, log_key=public_key, log_key_name=name,
            client=client)
    for reason in unreachable:
        console.print(f"[yellow]![/] {reason}")
    return witness_checks.witness_problems(
        session, witnesses=witnesses, views=views, now=runtime.clock.now(),
        max_age=timedelta(seconds=runtime.settings.witness_max_age_seconds))


@main.group()
def receipts() -> None:
    """Consent receipts."""


@receipts.command("verify")
@click.argument("receipt_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--verifier-key", "key",
              help="The vault's public verifier key (default: this vault's own). The key inside "
                   "the file is never trusted.")
@click.option("--witness-key", "witness_keys", multiple=True,
              help="A witness's cosigning key (repeatable): the tree head must carry a valid "
                   "cosignature by each one given.")
def receipts_verify(receipt_file: Path, key: str | None, witness_keys: tuple[str, ...]) -> None:
    """Check a consent receipt: its signature, its log proof, the signed tree head and the
    witnesses' cosignatures on it."""
    if key is None:
        settings = _settings()
        if not settings.resolved_key_file.exists():
            raise click.ClickException("no vault here to take the key from: give --verifier-key "
                                       "(GET /api/v1/audit/verifier-key on the vault)")
        runtime = Runtime.build(settings)
        key = _verifier_key(runtime)
        runtime.dispose()
    try:
        witnesses = [WitnessKey.parse(w) for w in witness_keys]
    except CheckpointError as exc:
        raise click.ClickException(f"not a witness cosigning key: {exc}") from exc
    check = consent_receipts.verify_file(receipt_file.read_bytes(), key, witnesses)
    if not check.valid:
        for problem in check.problems:
            console.print(f"[red]✗[/] {receipt_file}: {problem}")
        raise SystemExit(1)
    claims = check.claims or {}
    company = claims["piiControllers"][0]["piiController"]
    console.print(f"[green]Valid.[/] Receipt {claims['consentReceiptID']}: "
                  f"{claims['event']['type']} for {company} at {claims['event']['at']} "
                  f"({claims['status']}); signed by the vault and held in its log at entry "
                  f"{claims['audit'].get('entrySeq', claims['audit'].get('index'))}"
                  + (f", cosigned by {', '.join(check.cosigned_by)}." if check.cosigned_by
                     else "."))


@audit.command("checkpoint")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the signed note to this file, to hold for later checks.")
def audit_checkpoint(output: Path | None) -> None:
    """Sign the current tree head now, have the configured witnesses cosign it, print it."""
    runtime = Runtime.build(_settings())
    with unit_of_work(runtime.engine) as session:
        head = transparency.sign_head(session, tree=runtime.audit_tree,
                                      seed=runtime.keyring.signing_key,
                                      origin=runtime.log_origin, clock=runtime.clock)
    witness.remember(runtime.keystore_engine, head)
    for result in cosign_newest(runtime):
        console.print(f"witness {result.witness}: {result.outcome} {result.detail}".rstrip())
    with unit_of_work(runtime.engine) as session:
        note = cosigning.cosigned_note(session, head)
    runtime.dispose()
    if output is not None:
        output.write_text(note, encoding="utf-8")
    click.echo(note, nl=False)


@audit.command("accept-rollback")
@click.confirmation_option(prompt="Go on from this database, recording the rollback in the log?")
def audit_accept_rollback() -> None:
    """Go on from a restored backup that `serve` refused: record the rollback in the log and
    sign a head over it, which the key store then holds instead."""
    runtime = Runtime.build(_settings())
    try:
        try:
            check_not_rolled_back(runtime)
        except RolledBackError:
            pass
        else:
            raise click.ClickException(
                "Nothing to accept: the log reaches the newest head the key store holds.")
        with unit_of_work(runtime.engine) as session:
            accepted, head = witness.accept_rollback(
                session, runtime.keystore_engine, tree=runtime.audit_tree,
                seed=runtime.keyring.signing_key, origin=runtime.log_origin,
                clock=runtime.clock)
        witness.remember(runtime.keystore_engine, head, allow_back=True)
    finally:
        runtime.dispose()
    console.print(
        f"[yellow]Rollback accepted.[/] The key store held a head of {accepted.witnessed_size} "
        f"entries; the log had {accepted.log_size}. Entry {head.size} records this, and a new "
        "head is signed over it. An auditor holding a newer checkpoint will see the fork, as "
        "they should.")


@audit.command("verifier-key")
def audit_verifier_key() -> None:
    """Print the public key that checks every signed tree head."""
    runtime = Runtime.build(_settings())
    click.echo(_verifier_key(runtime))
    runtime.dispose()


@audit.command("export")
@click.argument("output", type=click.Path(dir_okay=False, writable=True, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv"]), default="jsonl",
              show_default=True)
def audit_export(output: Path, fmt: str) -> None:
    """Write the log up to a freshly signed head, with the checkpoints needed to verify it."""
    runtime = Runtime.build(_settings())
    with unit_of_work(runtime.engine) as session:
        head = transparency.sign_head(session, tree=runtime.audit_tree,
                                      seed=runtime.keyring.signing_key,
                                      origin=runtime.log_origin, clock=runtime.clock)
    partial = output.with_name(output.name + ".partial")
    with unit_of_work(runtime.engine) as session, partial.open("w", encoding="utf-8",
                                                                 newline="") as out:
        if fmt == "csv":
            written = write_csv(session, out, size=head.size)
        else:
            written = write_jsonl(session, out, verifier_key=_verifier_key(runtime),
                                  size=head.size)
    partial.replace(output)
    runtime.dispose()
    console.print(f"[green]Exported[/] {written} entries (signed head {head.size}) to {output}")


@main.group()
def clients() -> None:
    """Companies (OAuth clients): register, list, approve, suspend."""


def _scope_purposes(values: tuple[str, ...]) -> dict[str, list[str]]:
    notice: dict[str, list[str]] = {}
    for value in values:
        scope, sep, purpose = value.partition("=")
        if not sep or not purpose.strip():
            raise click.BadParameter(f"{value!r}: use SCOPE=PURPOSE", param_hint="--scope")
        notice.setdefault(scope.strip(), []).append(purpose.strip())
    return notice


@clients.command("add")
@click.option("--name", required=True)
@click.option("--description", default="", show_default=False)
@click.option("--homepage", required=True, help="https URL of the company's site.")
@click.option("--privacy-policy", "privacy_policy", required=True, help="https URL.")
@click.option("--redirect-uri", "redirect_uris", multiple=True, required=True,
              help="Exact redirect URI; repeat for several.")
@click.option("--scope", "scopes", multiple=True, required=True,
              help="SCOPE=PURPOSE, e.g. 'profile.email:read=Send your order receipts'; repeat.")
@click.option("--public", is_flag=True, help="A native app without a secret (PKCE only).")
@click.option("--pending", is_flag=True, help="Register without approving yet.")
@click.option("--sector-identifier-uri", "sector_uri",
              help="https URL of a JSON array of redirect URIs: registrations it lists share "
              "one pairwise sub per customer (OpenID Connect). Fetched now unless --sector-"
              "identifier-file gives its content.")
@click.option("--sector-identifier-file", "sector_file",
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The sector document's content, obtained out of band.")
@click.option("--id-token-alg", type=click.Choice(oauth_service.ID_TOKEN_ALGORITHMS),
              help="id_token signing algorithm (default: RS256 where the keyring has an RSA "
              "key, else ES256).")
@click.option("--require-par", is_flag=True,
              help="Accept only pushed authorization requests (RFC 9126).")
@click.option("--require-dpop", is_flag=True,
              help="Issue only DPoP-bound tokens (RFC 9449).")
def clients_add(name: str, description: str, homepage: str, privacy_policy: str,
                redirect_uris: tuple[str, ...], scopes: tuple[str, ...], public: bool,
                pending: bool, sector_uri: str | None, sector_file: Path | None,
                id_token_alg: str | None, require_par: bool, require_dpop: bool) -> None:
    """Register a company; its secret is printed once and never stored in clear."""
    settings = _settings()
    sector = None
    try:
        if sector_uri:
            allow_loopback = settings.sector_identifier_allow_loopback
            document = (sector_file.read_bytes() if sector_file else
                        sectors.fetch_document(sector_uri, allow_loopback=allow_loopback))
            sector = sectors.sector_identifier(sector_uri, document, list(redirect_uris),
                                               allow_loopback=allow_loopback)
        elif sector_file:
            raise click.BadParameter("needs --sector-identifier-uri: its host is the sector",
                                     param_hint="--sector-identifier-file")
    except DomainError as exc:
        details = "; ".join(f"{k}: {v}" for k, v in exc.problems.items())
        raise click.ClickException(f"{exc.detail} {details}".strip()) from exc
    registration = oauth_service.ClientRegistration(
        name=name, description=description, homepage=homepage,
        privacy_policy_url=privacy_policy, redirect_uris=list(redirect_uris),
        notice=_scope_purposes(scopes), public=public, require_par=require_par,
        require_dpop=require_dpop, sector_identifier=sector, id_token_alg=id_token_alg,
    )
    runtime = Runtime.build(settings)
    try:
        with unit_of_work(runtime.engine) as session:
            client, secret = oauth_service.register_client(
                session, clock=runtime.clock, registration=registration, approved=not pending)
            client_id, status = client.client_id, client.status
    except DomainError as exc:
        details = "; ".join(f"{k}: {v}" for k, v in exc.problems.items())
        raise click.ClickException(f"{exc.detail} {details}".strip()) from exc
    finally:
        runtime.dispose()
    click.echo(f"client_id: {client_id}")
    if sector:
        click.echo(f"sector: {sector}")
    if secret:
        click.echo(f"client_secret: {secret}")
        console.print("[yellow]Store the secret now: it is shown only this once.[/]")
    console.print(f"Status: {status}")


@clients.command("list")
def clients_list() -> None:
    """Every registered company with its status and scopes."""
    runtime = Runtime.build(_settings())
    with unit_of_work(runtime.engine) as session:
        rows = oauth_service.list_clients(session)
        table = Table("client_id", "name", "status", "type", "requires", "scopes")
        for row in rows:
            requires = [name for name, on in (("PAR", row.require_par),
                                              ("DPoP", row.require_dpop)) if on]
            table.add_row(row.client_id, row.name, row.status,
                          "public" if row.secret_hash is None else "confidential",
                          " ".join(requires) or "-", " ".join(json.loads(row.allowed_scopes)))
    runtime.dispose()
    Console().print(table)


def _set_status(client_id: str, status: ClientStatus) -> None:
    runtime = Runtime.build(_settings())
    try:
        with unit_of_work(runtime.engine) as session:
            oauth_service.set_client_status(session, client_id=client_id, status=status)
            audit_service.record(session, clock=runtime.clock, event=audit_service.AuditEvent(
                actor="operator:cli", action=f"client.{status}", resource=f"company:{client_id}"))
    except DomainError as exc:
        raise click.ClickException(exc.detail) from exc
    finally:
        runtime.dispose()
    console.print(f"[green]{client_id} is now {status}.[/]")


@clients.command("update")
@click.argument("client_id")
@click.option("--require-par/--no-require-par", default=None,
              help="Accept only pushed authorization requests (RFC 9126), or any.")
@click.option("--require-dpop/--no-require-dpop", default=None,
              help="Issue only DPoP-bound tokens (RFC 9449), or bearer tokens too.")
def clients_update(client_id: str, require_par: bool | None, require_dpop: bool | None) -> None:
    """Change how strictly a company must authorize (PAR, DPoP)."""
    runtime = Runtime.build(_settings())
    try:
        with unit_of_work(runtime.engine) as session:
            client = oauth_service.set_client_requirements(
                session, client_id=client_id, require_par=require_par,
                require_dpop=require_dpop)
            settings = {"require_par": client.require_par, "require_dpop": client.require_dpop}
            audit_service.record(session, clock=runtime.clock, event=audit_service.AuditEvent(
                actor="operator:cli", action="client.requirements_changed",
                resource=f"company:{client_id}", details=settings))
    except DomainError as exc:
        raise click.ClickException(exc.detail) from exc
    finally:
        runtime.dispose()
    console.print(f"[green]{client_id}:[/] " + ", ".join(
        f"{name} {'on' if on else 'off'}" for name, on in settings.items()))


@clients.command("suspend")
@click.argument("client_id")
def clients_suspend(client_id: str) -> None:
    """Suspend a company: every token it holds stops working at once."""
    _set_status(client_id, ClientStatus.SUSPENDED)


@clients.command("approve")
@click.argument("client_id")
def clients_approve(client_id: str) -> None:
    """Approve a pending (or re-approve a suspended) company."""
    _set_status(client_id, ClientStatus.APPROVED)


@main.group()
def auditors() -> None:
    """Auditor accounts (they see the log, never personal data)."""


@auditors.command("add")
@click.argument("email")
@click.password_option(help="The auditor's password (prompted when omitted).")
def auditors_add(email: str, password: str) -> None:
    """Create an auditor account that signs in at /signin and lands on /auditor."""
    runtime = Runtime.build(_settings())
    keyring = runtime.keyring
    try:
        with unit_of_work(runtime.engine) as session:
            account = accounts_service.create_account(
                session, index_key=keyring.index_key, data_keys=runtime.data_keys,
                clock=runtime.clock, role=Role.AUDITOR, email=email, password=password)
            audit_service.record(session, clock=runtime.clock, event=audit_service.AuditEvent(
                actor="operator:cli", action="auditor.created",
                subject=subject_pseudonym(keyring.pseudonym_key, account.id)))
    except DomainError as exc:
        raise click.ClickException(exc.detail) from exc
    finally:
        runtime.dispose()
    console.print("[green]Auditor created.[/] They sign in at /signin.")


@main.command("admin-token")
def admin_token() -> None:
    """Make a new operator token for the admin API and print the setting that enables it."""
    token = secrets.token_urlsafe(32)
    click.echo(f"token: {token}")
    click.echo(f"CMR_VAULT_ADMIN_TOKEN_SHA256={hashlib.sha256(token.encode()).hexdigest()}")
    console.print("[yellow]Keep the token secret; configure only the hash.[/]")


@main.command()
@click.option("--until-idle", is_flag=True, help="Stop once nothing is left to do.")
def worker(until_idle: bool) -> None:
    """Deliver messages and company events, work on campaigns, remind and lapse consents: a
    procrastinate worker on PostgreSQL, the in-process loop on SQLite (`serve` runs one)."""
    settings = _settings()
    runtime = Runtime.build(settings)
    try:
        if settings.uses_job_engine:
            jobs.run_worker(runtime, wait=not until_idle)
            return
        while True:
            done = campaign_pass(runtime)
            report = deliver_pass(runtime)
            changed = lifecycle_pass(runtime)
            sent = event_pass(runtime)
            if until_idle and not (done or changed) and report == DeliveryReport() \
                    and sent == EventDelivery():
                return
            if not done:
                time.sleep(settings.delivery_interval_seconds or 2.0)
    finally:
        runtime.dispose()
