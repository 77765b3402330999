"""One typed settings object, read from `CMR_VAULT_*` environment variables and `.env`.

Settings are read once (`get_settings()`) and passed explicitly to `create_app`, so tests build
their own without touching the environment. Anything secret is a `SecretStr`, which redacts
itself in `repr` and in logs.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

PACKAGE_DIR = Path(__file__).resolve().parent
SOURCE_ROOT = PACKAGE_DIR.parents[1]
DEFAULT_BASE_URL = "http://127.0.0.1:8000"


def _shipped_dir(name: str) -> Path:
    """Find `templates/` or `policies/`: inside the wheel when installed, else the repo root."""
    packaged = PACKAGE_DIR / name
    return packaged if packaged.is_dir() else SOURCE_ROOT / name


class Settings(BaseSettings):
    """Everything an operator can configure. Field names map to `CMR_VAULT_<NAME>`."""

    model_config = SettingsConfigDict(
        env_prefix="CMR_VAULT_", env_file=".env", extra="ignore", frozen=True
    )

    data_dir: Path = Path("var")
    database_url: str = ""
    keystore_url: str = ""
    key_file: Path | None = None
    kek: SecretStr | None = Field(
        default=None,
        description="KEK ring from the environment: 'id:base64key[,id:base64key…]', first active.",
    )
    base_url: str = Field(
        default="",
        description="The public URL people and companies reach the vault at (the OAuth issuer). "
        "Empty: `serve` and `demo` take the address they listen on; other commands "
        f"assume {DEFAULT_BASE_URL}.",
    )
    demo: bool = False
    templates_dir: Path = Field(default_factory=lambda: _shipped_dir("templates"))
    policy_dir: Path = Field(default_factory=lambda: _shipped_dir("policies"))
    session_max_age_seconds: int = 8 * 3600
    sign_in_max_failures: int = Field(
        default=5, ge=1, description="Failed sign-ins per address and account in the window, "
        "then 429: stops guessing one password from one place; other accounts are unaffected.")
    sign_in_account_max_failures: int = Field(
        default=20, ge=1, description="Failed sign-ins per account from all addresses together "
        "in the window: stops guessing one password from many places.")
    sign_in_address_max_failures: int = Field(
        default=300, ge=1, description="Failed sign-ins per address over all accounts in the "
        "window: far above the per-account limits (a proxy may put every customer behind one "
        "address), only there to slow credential stuffing. Keep it above "
        "sign_in_max_failures, so failures against one account never block another.")
    sign_in_window_seconds: int = Field(
        default=900, ge=1, description="The sliding window the sign-in limits count in.")
    data_key_max_encryptions: int = 2**28
    database_turns: int = Field(
        default=0, ge=0, description="Requests one worker lets use the database at once; 0: 1 "
        "on SQLite (its one write lock) and 8 more for read-only requests (company reads, "
        "introspection), the connection pool's size on PostgreSQL (10).")
    database_queue: int = Field(
        default=100, ge=0, description="Requests one worker lets wait for a database turn; "
        "beyond that, and after 10 s of waiting, it answers 503 with Retry-After at once.")
    epoch_key_file: Path | None = None
    erasure_shred_seconds: int = Field(
        default=3600, ge=1, le=86_400, description="How soon after an erasure the epoch key "
        "sealing the erased data key's residue in the key store is destroyed (the background "
        "check adds at most a minute); `cmr-vault keys shred-now` does it at once.")
    checkpoint_interval_seconds: float = 10.0
    witnesses: list[str] = Field(
        default_factory=list, description="Witnesses that cosign the audit log's checkpoints "
        "(C2SP tlog-witness), each '<submission URL> <witness verifier key>'; as an "
        "environment variable a JSON list. Each new checkpoint goes to every one.")
    witness_max_age_seconds: int = Field(
        default=3600, ge=1, description="`audit verify` refuses a log that a configured witness "
        "has not cosigned within this long; the signer asks again after half of it.")
    max_body_bytes: int = 1_000_000
    log_level: str = "INFO"
    smtp_host: str = Field(default="", description="SMTP relay for e-mail; empty: no e-mail.")
    smtp_port: int = 25
    smtp_sender: str = "CMR Vault <vault@localhost>"
    smtp_starttls: bool = False
    webhook_allow_loopback: bool = Field(
        default=False, description="Let customers' push endpoints and companies' event "
        "webhooks be on 127.0.0.1 (tests only).")
    sector_identifier_allow_loopback: bool = Field(
        default=False, description="Let a company's sector_identifier_uri be plain http on "
        "127.0.0.1 (tests only).")
    token_requests_per_minute: int = Field(
        default=120, ge=1, description="Token endpoint requests per client (or address) and "
        "minute, counted across every worker.")
    pushes_per_minute: int = Field(
        default=600, ge=1, description="Pushes, consent checks, offers and invitations per "
        "company and minute, counted across every worker.")
    signups_per_minute: int = Field(
        default=20, ge=1, description="Sign-ups per address and minute, counted across every "
        "worker; behind a proxy that hides addresses this is the whole vault's rate.")
    account_mails_per_minute: int = Field(
        default=3, ge=1, description="Password-reset and confirmation e-mails per address "
        "asking, and per mailbox written to, in any minute, counted across every worker.")
    password_hashes_at_once: int = Field(
        default=2, ge=1, description="Password hashes or checks (argon2id, 64 MiB and ~50 ms "
        "each) running at once in one process; the others wait their turn.")
    campaign_subjects_per_day: int = Field(
        default=2_000_000, ge=1, description="Campaign subjects (real runs) per company in any "
        "24 hours.")
    campaigns_running: int = Field(
        default=2, ge=1, description="Campaigns one company may have queued or running at once.")
    k_anonymity_threshold: int = Field(
        default=5, ge=2, description="Company figures below this count are suppressed.")
    jurisdiction: str = Field(
        default="EU", description="The jurisdiction named on consent receipts.")
    job_engine: Literal["auto", "in-process"] = Field(
        default="auto", description="auto: procrastinate workers on PostgreSQL, the in-process "
        "worker on SQLite; in-process: always the in-process worker.")
    delivery_interval_seconds: float = Field(
        default=2.0, description="How often the in-process worker delivers due messages; 0 off.")
    admin_token_sha256: str = Field(
        default="",
        description="SHA-256 (hex) of the operator's admin API token; empty disables the API. "
        "`cmr-vault admin-token` makes one.",
    )

    @property
    def uses_job_engine(self) -> bool:
        """Whether background work runs on procrastinate (PostgreSQL with job_engine=auto)."""
        return self.job_engine == "auto" and self.resolved_database_url.startswith("postgresql")

    @property
    def resolved_database_url(self) -> str:
        """The database URL, defaulting to a SQLite file under the data directory."""
        return self.database_url or f"sqlite:///{self.data_dir / 'cmr_vault.db'}"

    @property
    def resolved_keystore_url(self) -> str:
        """Where wrapped data keys live: deliberately not the main database (see crypto/)."""
        return self.keystore_url or f"sqlite:///{self.data_dir / 'keys' / 'keystore.db'}"

    @property
    def resolved_key_file(self) -> Path:
        """The keyring file created by `cmr-vault init`."""
        return self.key_file or self.data_dir / "keys" / "keyring.json"

    @property
    def resolved_epoch_key_file(self) -> Path:
        """The epoch keys (`crypto.epochs`): beside the keyring, outside every database."""
        return self.epoch_key_file or self.resolved_key_file.with_name("epoch-keys.json")

    @property
    def issuer(self) -> str:
        """The OAuth issuer and the origin pages are served from, without a trailing slash."""
        return self.public_url.rstrip("/")

    @property
    def public_url(self) -> str:
        """`base_url`, or the default address when none was set."""
        return self.base_url or DEFAULT_BASE_URL

    @property
    def is_loopback_http(self) -> bool:
        """True for a plain-http URL on this machine: the only place cookies may lack `Secure`."""
        parts = urlsplit(self.public_url)
        if parts.scheme != "http":
            return False
        host = parts.hostname or ""
        if host == "localhost":
            return True
        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False

    @property
    def secure_cookies(self) -> bool:
        """Cookies carry `Secure` everywhere except the plain-http loopback demo."""
        return not self.is_loopback_http


class UnsafeSettingsError(RuntimeError):
    """The vault refuses to start: the message says what is unsafe and how to fix it."""


def check_startup_safety(settings: Settings) -> None:
    """Refuse settings that would silently weaken the vault's promises.

    Durability pragmas are checked against the live database in `db.engine`; this checks what
    can be seen from the settings alone.
    """
    scheme = urlsplit(settings.public_url).scheme
    if scheme not in {"http", "https"}:
        raise UnsafeSettingsError(
            f"CMR_VAULT_BASE_URL must be http(s), got {settings.public_url!r}")
    if scheme == "http" and not settings.is_loopback_http:
        raise UnsafeSettingsError(
            "CMR_VAULT_BASE_URL is plain http on a non-loopback host: sessions and tokens would "
            "travel in clear text. Serve over https (or behind a TLS-terminating proxy)."
        )
    if not settings.resolved_key_file.exists():
        raise UnsafeSettingsError(
            f"No keyring: {settings.resolved_key_file} does not exist. Run `cmr-vault init` "
            "first (or `cmr-vault demo` for a demo)."
        )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
