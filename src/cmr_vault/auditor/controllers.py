"""Auditor pages and API: search, entry detail with replay, integrity, company reports."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import UTC, date, datetime
from typing import Annotated, Any

from litestar import Controller, get, post
from litestar.di import Provide
from litestar.params import FromPath, FromQuery, QueryParameter
from litestar.response import Redirect, Template

from cmr_vault.accounts import service as accounts_service
from cmr_vault.accounts.deps import Auditor, provide_auditor
from cmr_vault.audit import transparency
from cmr_vault.audit.controllers import MAX_SEQ, LogPosition
from cmr_vault.audit.models import AuditEntry
from cmr_vault.auditor import service as auditor_service
from cmr_vault.auditor.schemas import (
    BacklogList,
    CompanyReportDocument,
    EntryDocument,
    EntryPage,
    IntegrityDocument,
    ReplayDocument,
)
from cmr_vault.clock import utc_iso
from cmr_vault.deps import DbSession, RuntimeDep
from cmr_vault.errors import NotFound, ValidationFailed
from cmr_vault.i18n import gettext as _
from cmr_vault.web import charts
from cmr_vault.web.openapi import AUDITOR_SESSION


def _iso(day: date | None) -> str:
    return day.isoformat() if day else ""


def _day(value: str, name: str) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value).replace(tzinfo=UTC)
    except ValueError as exc:
        raise ValidationFailed("Dates are YYYY-MM-DD.", problems={name: "not a date"}) from exc


def _filter(company: str, subject: str, action: str, outcome: str, reason: str, since: str,
            until: str) -> auditor_service.LogFilter:
    return auditor_service.LogFilter(company=company.strip(), subject=subject.strip(),
                                     action=action.strip(), outcome=outcome.strip(),
                                     reason=reason.strip(), since=_day(since, "since"),
                                     until=_day(until, "until"))


def _entry_or_404(db_session: Any, seq: int) -> AuditEntry:
    found = auditor_service.entry(db_session, seq)
    if found is None:
        raise NotFound(f"There is no entry {seq}.")
    return found


def entry_document(entry: AuditEntry) -> EntryDocument:
    """An entry as the API shows it (details as an object)."""
    return {"seq": entry.seq, "recorded_at": utc_iso(entry.recorded_at), "actor": entry.actor,
            "action": entry.action, "subject": entry.subject, "resource": entry.resource,
            "purpose": entry.purpose, "outcome": entry.outcome,
            "details": json.loads(entry.details), "entry_hash": entry.entry_hash}


def _report_document(report: auditor_service.CompanyReport) -> CompanyReportDocument:
    return {"company": report.company, "totals": dict(report.totals),
            "refusals_by_reason": dict(report.refusals_by_reason.most_common()),
            "days": {day.isoformat(): dict(counts) for day, counts in sorted(report.days.items())}}


REPORT_MEASURES = ["reads", "reads refused", "pushes", "pushes sent", "consent checks",
                   "consent changes", "revocations"]


def _measure_names() -> dict[str, str]:
    return {"reads": _("reads"), "reads refused": _("reads refused"), "pushes": _("pushes"),
            "pushes sent": _("pushes sent"), "consent checks": _("consent checks"),
            "consent changes": _("consent changes"), "revocations": _("revocations")}


def _report_charts(report: auditor_service.CompanyReport) -> list[tuple[str, charts.Chart]]:
    """One chart per measure with anything to show: a column per day, with axes."""
    drawn = []
    for measure in REPORT_MEASURES:
        series = report.series(measure)
        if not any(count for _day, count in series):
            continue
        name = _measure_names()[measure]
        title = _("%(measure)s per day") % {"measure": name}
        description = _("From %(first)s to %(last)s; the most on one day: %(peak)d.") % {
            "first": series[0][0].isoformat(), "last": series[-1][0].isoformat(),
            "peak": max(count for _day, count in series)}
        drawn.append((measure, charts.columns(
            title, description, [(day.strftime("%m-%d"), count) for day, count in series],
            value_label=name, category_label=_("day (month-day, UTC)"))))
    return drawn


class AuditorPages(Controller):
    """Server-rendered pages for auditors; they show pseudonyms and counts, never people."""

    include_in_schema = False  # pages for people, not the machine API

    path = "/auditor"
    dependencies = {"auditor": Provide(provide_auditor, sync_to_thread=True)}

    @get("/", sync_to_thread=True)
    def log(self, auditor: Auditor, db_session: DbSession, company: FromQuery[str] = "",
            subject: FromQuery[str] = "", action: FromQuery[str] = "",
            outcome: FromQuery[str] = "", reason: FromQuery[str] = "",
            since: FromQuery[str] = "", until: FromQuery[str] = "",
            before: Annotated[int | None, QueryParameter(ge=1, le=MAX_SEQ)] = None
            ) -> Template:
        """Search and filter the log, newest first."""
        flt = _filter(company, subject, action, outcome, reason, since, until)
        entries = auditor_service.search(db_session, flt, before=before)
        return Template("auditor/log.html", context={
            "account": auditor, "entries": entries, "filter": flt, "since": since,
            "actors": auditor_service.actors(db_session, entries),
            "until": until, "next_before": entries[-1].seq if len(entries) ==
            auditor_service.PAGE_SIZE else None,
            "details": {e.seq: json.loads(e.details) for e in entries},
        })

    @get("/entries/{seq:int}", sync_to_thread=True)
    def entry(self, auditor: Auditor, db_session: DbSession, runtime: RuntimeDep,
              seq: LogPosition) -> Template:
        """One entry: what was recorded, the decision replayed, its place in the tree."""
        found = _entry_or_404(db_session, seq)
        return Template("auditor/entry.html", context={
            "account": auditor, "entry": found, "details": json.loads(found.details),
            "actor": auditor_service.actors(db_session, [found])[found.actor],
            "replays": auditor_service.replay_entry(found, runtime.policy.current)})

    @get("/integrity", sync_to_thread=True)
    def integrity(self, auditor: Auditor, db_session: DbSession, runtime: RuntimeDep,
                  checked: FromQuery[bool] = False) -> Template:
        """The log's size, its latest signed head, and the last full verification."""
        status = auditor_service.integrity(db_session)
        key = transparency.verifier_key(runtime.keyring.signing_key, runtime.log_origin)
        last = json.loads(status.last_verification.details) if status.last_verification else {}
        return Template("auditor/integrity.html", context={
            "account": auditor, "status": status, "verifier_key": key, "last": last,
            "checked": checked})

    @post("/integrity", status_code=303, sync_to_thread=True)
    def verify(self, auditor: Auditor, db_session: DbSession, runtime: RuntimeDep) -> Redirect:
        """Recompute every hash, root and signature now, and record the result."""
        key = transparency.verifier_key(runtime.keyring.signing_key, runtime.log_origin)
        auditor_service.verify_now(
            db_session, verifier_key=key, clock=runtime.clock,
            auditor=accounts_service.actor_for(runtime.keyring.pseudonym_key, auditor))
        return Redirect(path="/auditor/integrity?checked=true", status_code=303)

    @get("/reports", sync_to_thread=True)
    def reports(self, auditor: Auditor, db_session: DbSession, runtime: RuntimeDep,
                company: FromQuery[str] = "",
                since: FromQuery[str] = "", until: FromQuery[str] = "") -> Template:
        """A company's reads, pushes, refusals by reason and consent changes, per day."""
        report = (auditor_service.company_report(db_session, company=company.strip(),
                                                 since=_day(since, "since"),
                                                 until=_day(until, "until"))
                  if company.strip() else None)
        companies = auditor_service.companies(db_session)
        return Template("auditor/reports.html", context={
            "account": auditor, "report": report, "company": company.strip(), "since": since,
            "company_name": dict(companies).get(company.strip(), company.strip()),
            "companies": companies,
            "backlogs": auditor_service.unacknowledged_changes(db_session,
                                                              now=runtime.clock.now()),
            "until": until, "measures": REPORT_MEASURES, "measure_names": _measure_names(),
            "charts": _report_charts(report) if report else []})


class AuditorApi(Controller):
    """The same views as JSON, for scripts (GET only, with the auditor's session).

    Each handler names `auditor` only so that the dependency runs: it is the access check.
    """

    path = "/api/v1/auditor"
    tags = ["auditor"]
    security = AUDITOR_SESSION
    dependencies = {"auditor": Provide(provide_auditor, sync_to_thread=True)}

    @get("/entries", sync_to_thread=True)
    def entries(self, auditor: Auditor,  # noqa: ARG002
                db_session: DbSession, company: FromQuery[str] = "",
                subject: FromQuery[str] = "", action: FromQuery[str] = "",
                outcome: FromQuery[str] = "", reason: FromQuery[str] = "",
                since: FromQuery[date | None] = None, until: FromQuery[date | None] = None,
                before: Annotated[int | None, QueryParameter(ge=1, le=MAX_SEQ)] = None
                ) -> EntryPage:
        """Entries matching every filter given, newest first, 100 a page (`before` pages on)."""
        flt = _filter(company, subject, action, outcome, reason, _iso(since), _iso(until))
        found = auditor_service.search(db_session, flt, before=before)
        return {"entries": [entry_document(e) for e in found],
                "next_before": found[-1].seq if len(found) == auditor_service.PAGE_SIZE
                else None}

    @get("/entries/{seq:int}/replay", sync_to_thread=True)
    def replay(self, auditor: Auditor,  # noqa: ARG002
               db_session: DbSession, runtime: RuntimeDep, seq: LogPosition) -> ReplayDocument:
        """Decide the entry's recorded requests again from their recorded facts."""
        replays = auditor_service.replay_entry(_entry_or_404(db_session, seq),
                                               runtime.policy.current)
        return {"seq": seq, "replays": [{**asdict(r), "same": r.same} for r in replays]}

    @get("/reports/{company:str}", sync_to_thread=True)
    def report(self, auditor: Auditor,  # noqa: ARG002
               db_session: DbSession, company: FromPath[str],
               since: FromQuery[date | None] = None, until: FromQuery[date | None] = None
               ) -> CompanyReportDocument:
        """Counts per day and refusals by reason for one company."""
        return _report_document(auditor_service.company_report(
            db_session, company=company, since=_day(_iso(since), "since"),
            until=_day(_iso(until), "until")))

    @get("/unacknowledged", sync_to_thread=True)
    def unacknowledged(self, auditor: Auditor,  # noqa: ARG002
                       db_session: DbSession, runtime: RuntimeDep) -> BacklogList:
        """Per company: consent changes not yet acknowledged, and the oldest one's age."""
        return {"companies": [
            {"client_id": b.client_id, "company": b.company, "unacknowledged": b.count,
             "oldest": b.oldest.isoformat(), "age_seconds": int(b.age.total_seconds())}
            for b in auditor_service.unacknowledged_changes(db_session,
                                                            now=runtime.clock.now())]}

    @get("/integrity", sync_to_thread=True)
    def integrity(self, auditor: Auditor,  # noqa: ARG002
                  db_session: DbSession) -> IntegrityDocument:
        """Log size, latest signed head, last verification."""
        status = auditor_service.integrity(db_session)
        head = status.latest_checkpoint
        last = status.last_verification
        return {"log_size": status.log_size,
                "latest_checkpoint": {"size": head.size, "root_hash": head.root_hash,
                                      "note": head.note} if head else None,
                "last_verification": entry_document(last) if last else None}
