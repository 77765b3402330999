"""The company data API: read a customer's fields with a bearer token and a stated purpose.

Every read is decided field by field by the policy engine and written to the audit log through
the group-commit appender, whose commit the request awaits before the response is sent: no
answer (allowed or refused) leaves the vault without its durable audit entry, and concurrent
reads share one commit instead of queueing for the log's lock one by one. The read itself runs
in one worker thread on a read-only connection (token, grant and company in one query, the
fields in another, the data key from the key store), so it never holds SQLite's write lock.
"""

from __future__ import annotations

from typing import Annotated, Any, TypedDict

import anyio.to_thread
from litestar import Controller, Request, Response, get
from litestar.openapi import ResponseSpec
from litestar.params import FromPath, QueryParameter

from cmr_vault.db.session import database_gate, read_only_connection, unit_of_work
from cmr_vault.deps import RuntimeDep
from cmr_vault.errors import Forbidden, Unavailable, ValidationFailed
from cmr_vault.oauth.deps import (
    PresentedToken,
    check_sender,
    company_access,
    needs_sender_check,
    presented_token,
)
from cmr_vault.patterns import NOT_BLANK, explain
from cmr_vault.runtime import Runtime
from cmr_vault.vault import service as vault_service
from cmr_vault.vault.fields import FIELD_NAMES
from cmr_vault.web.admission import READ_GATE
from cmr_vault.web.errors import exception_to_http_response
from cmr_vault.web.openapi import ACCESS_TOKEN


class ProfileRead(TypedDict):
    """The fields read for the stated purpose (lists for interests and identities; None for a
    field the customer left empty), and the policy version that allowed it."""

    subject: str
    purpose: str
    fields: dict[str, Any]
    policy_version: str


MAX_FIELDS = len(FIELD_NAMES)
_FIELD = f"({'|'.join(FIELD_NAMES)})"
FIELD_LIST = explain(rf"^{_FIELD}(,{_FIELD})*$", "must name profile fields, comma-separated: "
                     + ", ".join(FIELD_NAMES))


def _requested_fields(fields: str) -> list[str]:
    names = list(dict.fromkeys(f.strip() for f in fields.split(",") if f.strip()))
    unknown = [n for n in names if n not in FIELD_NAMES]
    if not names or unknown or len(names) > MAX_FIELDS:
        raise ValidationFailed(
            "Name the fields to read, comma-separated.",
            problems={"fields": f"unknown: {', '.join(unknown)}" if unknown
                      else f"1 to {MAX_FIELDS} of: {', '.join(FIELD_NAMES)}"},
        )
    return names


class CompanyProfileApi(Controller):
    """Reads by companies, on behalf of the purposes customers consented to."""

    path = "/api/v1/subjects"
    tags = ["company data"]
    security = ACCESS_TOKEN

    @get("/{subject:str}/profile", opt={READ_GATE: True}, responses={
        200: ResponseSpec(data_container=ProfileRead, description="The granted fields")})
    async def read_profile(
        self, request: Request[Any, Any, Any], subject: FromPath[str],
        fields: Annotated[str, QueryParameter(
            pattern=FIELD_LIST, max_length=500,
            description="Comma-separated profile field names, e.g. email,given_name.")],
        purpose: Annotated[str, QueryParameter(
            min_length=1, max_length=200, pattern=NOT_BLANK,
            description="Why the company reads: one of the purposes the customer agreed to.")],
        runtime: RuntimeDep,
    ) -> Response[Any] | ProfileRead:
        """The granted fields of one customer (named by your pairwise subject), or a refusal."""
        token = presented_token(request, runtime.settings.issuer)
        # The turn is held until the entry is durable: a read waiting on a stuck audit log
        # still counts, so a worker sheds new reads instead of piling them up in memory.
        gate = database_gate(request.app.state, read_only=True)
        await gate.enter()
        try:
            read = await anyio.to_thread.run_sync(_read, runtime, token, subject, fields,
                                                  purpose)
            await runtime.audit_appender.append_async(read.event)
        except TimeoutError:
            raise Unavailable("The audit log did not take this read in time.",
                              retry_after=5) from None
        finally:
            gate.leave()
        if read.refused:
            return exception_to_http_response(request, Forbidden(
                "The customer's grant does not allow this read.",
                problems={n: "; ".join(d.reasons) for n, d in read.refused.items()},
            ))
        return {"subject": subject, "purpose": purpose, "fields": read.values,
                "policy_version": read.policy_version}


def _read(runtime: Runtime, token: PresentedToken, subject: str, fields: str,
          purpose: str) -> vault_service.CompanyRead:
    """All of a read's database work, in one worker thread on one read-only connection.

    Only a DPoP request writes (its proof is spent in the database, so no worker accepts it
    twice), in a short transaction of its own beside the read-only one.
    """
    now = runtime.clock.now()
    with read_only_connection(runtime.engine) as connection:
        access = company_access(connection, token, now)
        if needs_sender_check(access, token):
            with unit_of_work(runtime.engine) as session:
                check_sender(session, access, token, now)
        return vault_service.read_for_company(
            connection, cipher=runtime.cipher, policy=runtime.policy.current,
            pseudonym_key=runtime.keyring.pseudonym_key, company=access.client,
            grant=access.grant, in_force=access.scopes, subject=subject,
            fields=_requested_fields(fields), purpose=purpose, now=now)
