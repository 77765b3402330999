"""The process-wide collaborators, built once from settings and shared by every request.

Holds no request state: app processes stay stateless and all state lives in the database and
the key store, so any number of workers can run side by side.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import Engine
from sqlmodel import Session

from cmr_vault.audit.appender import GroupCommitAppender
from cmr_vault.audit.cosigning import WitnessEndpoint, configured_witnesses
from cmr_vault.audit.service import AuditEvent
from cmr_vault.audit.transparency import TreeCache, log_origin, pinned_origin
from cmr_vault.clock import Clock, SystemClock
from cmr_vault.consent.receipts import ReceiptSigner
from cmr_vault.consent.service import ConsentContext
from cmr_vault.crypto.blind_index import blind_index
from cmr_vault.crypto.data_keys import DataKeyStore
from cmr_vault.crypto.epochs import EpochKeyFile
from cmr_vault.crypto.field_cipher import FieldCipher
from cmr_vault.crypto.kek import KeyProvider, KeyringFileProvider, StaticKeyProvider
from cmr_vault.crypto.keyring import Keyring
from cmr_vault.db.engine import IMMEDIATE_OPTION, make_engine
from cmr_vault.marketing.delivery import (
    AccountMailer,
    DeliveryChannel,
    InboxChannel,
    SmtpChannel,
    WebhookChannel,
)
from cmr_vault.marketing.service import DeliveryContext
from cmr_vault.policy.store import PolicyStore, ReloadResult
from cmr_vault.rate_limits import RateLimits
from cmr_vault.settings import Settings


@dataclass
class Runtime:
    """Engines, keys and ciphers for one process."""

    settings: Settings
    engine: Engine
    keystore_engine: Engine
    key_provider: KeyProvider
    keyring_provider: KeyringFileProvider
    data_keys: DataKeyStore
    cipher: FieldCipher
    audit_appender: GroupCommitAppender
    policy: PolicyStore
    audit_tree: TreeCache = field(default_factory=TreeCache)
    clock: Clock = field(default_factory=SystemClock)
    rate_limits: RateLimits = field(init=False)
    account_mailer_override: AccountMailer | None = field(default=None, repr=False)
    _origin: str | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.rate_limits = RateLimits(
            token_per_minute=self.settings.token_requests_per_minute,
            pushes_per_minute=self.settings.pushes_per_minute,
            signups_per_minute=self.settings.signups_per_minute,
            account_mails_per_minute=self.settings.account_mails_per_minute,
            caller_key=self.rate_limit_key)

    def rate_limit_key(self, caller: str) -> str:
        """The keyed hash a caller is counted under: an address never reaches the database."""
        return blind_index(self.keyring.index_key, "rate-limit", caller)

    @property
    def log_origin(self) -> str:
        """The audit log's name (C2SP origin): pinned by its first signed checkpoint."""
        if self._origin is None:
            # A deferred read on a connection of its own: the caller may be inside a write
            # transaction, and a second BEGIN IMMEDIATE on SQLite would wait for it for ever.
            with self.engine.connect() as conn, Session(
                    bind=conn.execution_options(**{IMMEDIATE_OPTION: False})) as session:
                self._origin = pinned_origin(session)
            if self._origin is None:
                return log_origin(self.settings.issuer)
        return self._origin

    @property
    def witnesses(self) -> list[WitnessEndpoint]:
        """The witnesses that cosign the audit log's checkpoints (`witnesses` setting)."""
        return configured_witnesses(self.settings.witnesses)

    @property
    def keyring(self) -> Keyring:
        """Blind-index, pseudonym, CSRF and signing keys (re-read if the file changed)."""
        return self.keyring_provider.keyring()

    @property
    def delivery_channels(self) -> dict[str, DeliveryChannel]:
        """The channels this vault delivers on: inbox and signed webhooks always, e-mail when
        an SMTP relay is configured (SMS needs a provider adapter this vault does not have)."""
        channels: dict[str, DeliveryChannel] = {
            "inbox": InboxChannel(),
            "webhook": WebhookChannel(allow_loopback=self.settings.webhook_allow_loopback),
        }
        if self.settings.smtp_host:
            channels["email"] = SmtpChannel(self.settings.smtp_host, self.settings.smtp_port,
                                            self.settings.smtp_sender, self.settings.smtp_starttls)
        return channels

    @property
    def account_mailer(self) -> AccountMailer | None:
        """Where reset and confirmation links go: the SMTP relay, or a mailer a test put in
        `account_mailer_override`; None when the vault has no way to send e-mail."""
        if self.account_mailer_override is not None:
            return self.account_mailer_override
        if self.settings.smtp_host:
            return SmtpChannel(self.settings.smtp_host, self.settings.smtp_port,
                               self.settings.smtp_sender, self.settings.smtp_starttls)
        return None

    def delivery_context(self) -> DeliveryContext:
        """What the delivery worker needs, with the policy set in force now."""
        return DeliveryContext(clock=self.clock, policy=self.policy.current, cipher=self.cipher,
                               pseudonym_key=self.keyring.pseudonym_key,
                               channels=self.delivery_channels,
                               unsubscribe_base=self.settings.issuer)

    def consent_context(self) -> ConsentContext:
        """What consent changes need, with the lifecycle of the policy set in force now."""
        return ConsentContext(
            clock=self.clock, pseudonym_key=self.keyring.pseudonym_key,
            make_signer=self.receipt_signer, lifecycle=self.policy.current.lifecycle)

    def receipt_signer(self) -> ReceiptSigner:
        """Signs consent receipts with the log's key, under the log's name."""
        return ReceiptSigner(seed=self.keyring.signing_key, issuer=self.settings.issuer,
                             origin=self.log_origin, jurisdiction=self.settings.jurisdiction,
                             clock=self.clock, witnesses=tuple(w.key for w in self.witnesses))

    @classmethod
    def build(cls, settings: Settings, *, clock: Clock | None = None) -> Runtime:
        """Wire everything from settings; nothing here talks to the network."""
        keyring_provider = KeyringFileProvider(settings.resolved_key_file)
        key_provider: KeyProvider = keyring_provider
        if settings.kek is not None:
            key_provider = StaticKeyProvider.from_env_value(settings.kek.get_secret_value())
        keystore_engine = make_engine(settings.resolved_keystore_url, immediate=False)
        data_keys = DataKeyStore(
            engine=keystore_engine,
            provider=key_provider,
            epochs=EpochKeyFile(settings.resolved_epoch_key_file),
            max_encryptions=settings.data_key_max_encryptions,
            shred_delay=timedelta(seconds=settings.erasure_shred_seconds),
        )
        engine = make_engine(settings.resolved_database_url)
        clock = clock or SystemClock()
        appender = GroupCommitAppender(engine=engine, clock=clock)
        return cls(
            settings=settings,
            engine=engine,
            keystore_engine=keystore_engine,
            key_provider=key_provider,
            keyring_provider=keyring_provider,
            data_keys=data_keys,
            cipher=FieldCipher(data_keys, name_key=keyring_provider.keyring().index_key),
            audit_appender=appender,
            policy=PolicyStore(settings.policy_dir, on_reload=_audit_reload(appender)),
            clock=clock,
        )

    def dispose(self) -> None:
        """Flush pending audit appends, then close every pooled connection."""
        self.audit_appender.close()
        self.engine.dispose()
        self.keystore_engine.dispose()


def _audit_reload(appender: GroupCommitAppender) -> Callable[[ReloadResult], None]:
    """Every policy reload, good or refused, goes to the audit log with its version."""

    def record(result: ReloadResult) -> None:
        appender.submit(AuditEvent(
            actor="system:policy", action="policy.reloaded" if result.ok else "policy.refused",
            resource="policies", outcome="ok" if result.ok else "refused",
            details={"policy_version": result.version, "changed": result.changed,
                     "problems": result.problems[:20]},
        ))

    return record
