"""The company data API: read a customer's fields with a bearer token and a stated purpose.

Every read is decided field by field by the policy engine and written to the audit log in the
request's own transaction, which commits before the response is sent: no answer (allowed or
refused) leaves the vault without its durable audit entry.
"""

from __future__ import annotations

import hmac
from typing import Annotated, Any

from litestar import Controller, Request, Response, get
from litestar.di import Provide
from litestar.params import FromPath, QueryParameter

from cmr_vault.audit import service as audit_service
from cmr_vault.crypto.blind_index import subject_pseudonym
from cmr_vault.deps import DbSession, RuntimeDep
from cmr_vault.errors import Forbidden, NotFound, ValidationFailed
from cmr_vault.oauth.deps import CompanyAccessDep, provide_company_access
from cmr_vault.patterns import NOT_BLANK, explain
from cmr_vault.vault import service as vault_service
from cmr_vault.vault.fields import FIELD_NAMES
from cmr_vault.web.errors import exception_to_http_response
from cmr_vault.web.openapi import ACCESS_TOKEN

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
    dependencies = {"access": Provide(provide_company_access, sync_to_thread=True)}

    @get("/{subject:str}/profile", sync_to_thread=True)
    def read_profile(
        self, request: Request[Any, Any, Any], subject: FromPath[str],
        fields: Annotated[str, QueryParameter(
            pattern=FIELD_LIST, max_length=500,
            description="Comma-separated profile field names, e.g. email,given_name.")],
        purpose: Annotated[str, QueryParameter(
            min_length=1, max_length=200, pattern=NOT_BLANK,
            description="Why the company reads: one of the purposes the customer agreed to.")],
        access: CompanyAccessDep, db_session: DbSession,
        runtime: RuntimeDep,
    ) -> Response[Any] | dict[str, Any]:
        """The granted fields of one customer (named by your pairwise subject), or a refusal."""
        if not hmac.compare_digest(subject.encode(), access.grant.pairwise_subject.encode()):
            raise NotFound("This token gives no access to that subject.")
        names = _requested_fields(fields)
        if not purpose.strip():
            raise ValidationFailed("State the purpose of this read.",
                                   problems={"purpose": "required"})
        now = runtime.clock.now()
        read = vault_service.CompanyReadRequest(company=access.client.client_id, subject=subject,
                                                fields=names, purpose=purpose)
        decisions = vault_service.decide_company_read(
            policy=runtime.policy.current, request=read, now=now, time_zone="UTC",
            grant_facts=vault_service.read_facts(access.grant, in_force=access.scopes,
                                                 fields=names, now=now),
        )
        refused = {n: d.decision for n, d in decisions.items() if d.decision.outcome != "allow"}
        version = next(iter(decisions.values())).decision.policy_version
        keyring = runtime.keyring
        audit_service.record(db_session, clock=runtime.clock, event=audit_service.AuditEvent(
            actor=f"company:{access.client.client_id}", action="profile.read",
            subject=subject_pseudonym(keyring.pseudonym_key, access.grant.account_id),
            resource="profile", purpose=purpose, outcome="deny" if refused else "allow",
            details={
                "company_name": access.client.name, "fields": names,
                "refused": sorted(refused),
                "rule_ids": sorted({r for d in decisions.values() for r in d.decision.rule_ids}),
                "reasons": sorted({r for d in refused.values() for r in d.reasons}),
                "policy_version": version,
                "decisions": {n: d.record() for n, d in decisions.items()},
            },
        ))
        if refused:
            # Returned, not raised: the refusal's audit entry must commit with the request.
            return exception_to_http_response(request, Forbidden(
                "The customer's grant does not allow this read.",
                problems={n: "; ".join(d.reasons) for n, d in refused.items()},
            ))
        values = vault_service.open_for_company(db_session, cipher=runtime.cipher,
                                                account_id=access.grant.account_id, fields=names)
        return {"subject": subject, "purpose": purpose, "fields": values,
                "policy_version": version}
