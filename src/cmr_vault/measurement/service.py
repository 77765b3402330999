"""A company's figures: grants, opt-in rates, pushes, intents and offers, all aggregates.

Every count below the k-anonymity threshold (but above zero) is suppressed, and a rate is shown
only when both its parts reach the threshold, so no figure can point at one person. The
counts come from the audit log (what happened) and, for opt-in rates, the current settings.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from cmr_vault.auditor import activity
from cmr_vault.consent import service as consent_service
from cmr_vault.marketing.models import ChannelPreference
from cmr_vault.oauth.scopes import CHANNELS

UNNAMED_RULE = "(no rule named)"
GRANT_CHANGES = ("given", "renewed", "narrowed", "widened", "expired", "revoked",
                 "relinquished")


@dataclass(frozen=True)
class Figure:
    """One count as shown: the value, or None when it is too small to show."""

    value: int | None

    @property
    def suppressed(self) -> bool:
        """True when the true count is above zero but below the threshold."""
        return self.value is None


@dataclass
class Figures:
    """Everything on the dashboard, already suppressed."""

    threshold: int
    grants: dict[str, Figure] = field(default_factory=dict)
    opt_in_rates: dict[str, float | None] = field(default_factory=dict)
    pushes: dict[str, Figure] = field(default_factory=dict)
    refusals_by_rule: dict[str, Figure] = field(default_factory=dict)
    intents: dict[str, Figure] = field(default_factory=dict)
    offers: dict[str, Figure] = field(default_factory=dict)

    @staticmethod
    def total(group: dict[str, Figure]) -> Figure:
        """The sum of a group, shown only when every part is: with one part hidden, a total
        would give it away by subtraction."""
        if any(figure.suppressed for figure in group.values()):
            return Figure(None)
        return Figure(sum(figure.value or 0 for figure in group.values()))

    @property
    def decided_pushes(self) -> dict[str, Figure]:
        """Pushes by the decision taken on them; each push is decided once."""
        return {name: self.pushes[name] for name in ("accepted", "deferred", "refused")}

    def document(self) -> dict[str, Any]:
        """As JSON: suppressed counts are null with `suppressed_below` saying why."""
        def values(group: dict[str, Figure]) -> dict[str, int | None]:
            return {name: figure.value for name, figure in group.items()}
        return {"suppressed_below": self.threshold, "grants": values(self.grants),
                "opt_in_rates": self.opt_in_rates, "pushes": values(self.pushes),
                "refusals_by_rule": values(self.refusals_by_rule),
                "intents": values(self.intents), "offers": values(self.offers)}


def _shown(count: int, k: int) -> Figure:
    return Figure(count if count == 0 or count >= k else None)


def _tally(session: Session, client_id: str, since: datetime | None) -> dict[str, Counter[str]]:
    """One pass over the company's audit entries, counted by what they record."""
    tallies: dict[str, Counter[str]] = {name: Counter() for name in
                                        ("grants", "pushes", "refusals", "intents", "offers")}
    seen: set[str] = set()
    answered: set[str] = set()
    for entry in activity.company_entries(session, client_id, since=since):
        _count(entry.action, entry.outcome, entry.resource, json.loads(entry.details),
               tallies, seen, answered)
    tallies["intents"]["seen"], tallies["intents"]["answered"] = len(seen), len(answered)
    return tallies


def _count(action: str, outcome: str, resource: str, details: dict[str, Any],
           tallies: dict[str, Counter[str]], seen: set[str], answered: set[str]) -> None:
    if action.startswith("grant.") and action.removeprefix("grant.") in GRANT_CHANGES:
        tallies["grants"][action.removeprefix("grant.")] += 1
    elif (counted := activity.push_count(action, outcome)) is not None:
        tallies["pushes"][counted] += 1
        if counted is activity.PushCount.REFUSED:
            # Once, under the first rule that decided: several rules may refuse one push, and
            # counting it under each would make the rules add up to more than the refusals.
            tallies["refusals"][(details.get("rule_ids") or [UNNAMED_RULE])[0]] += 1
    elif action == "intent.seen":
        seen.add(resource)
    elif action == "offer.sent":
        tallies["offers"]["sent" if outcome != "deny" else "refused"] += 1
        if details.get("intent"):
            answered.add(f"intent:{details['intent']}")
    elif action == "invitation.sent":
        tallies["offers"]["invitations sent" if outcome != "deny" else "invitations refused"] += 1
    elif action in ("offer.accepted", "offer.declined"):
        verb = action.removeprefix("offer.")
        kind = "invitations" if details.get("kind") == "invitation" else "offers"
        tallies["offers"][f"{kind} {verb}"] += 1


OTHER_RULES = "other rules"


def refusals_by_rule(counts: Counter[str], k: int) -> dict[str, Figure]:
    """Refused pushes per deciding rule, adding up to the refusals: rules with fewer than `k`
    go together under "other rules", and while that group is itself below `k` the smallest
    named rule joins it, so no count can be worked out by subtracting the others from the
    total."""
    named = dict(sorted(counts.items(), key=lambda item: (item[1], item[0])))
    other = 0
    for rule, count in list(named.items()):
        if count < k:
            other += named.pop(rule)
    while 0 < other < k and named:
        other += named.pop(next(iter(named)))
    shown = {rule: Figure(count) for rule, count in sorted(named.items())}
    if other:
        shown[OTHER_RULES] = _shown(other, k)
    return shown


def _opt_in_rates(session: Session, client_id: str, now: datetime, k: int
                  ) -> dict[str, float | None]:
    """Per channel: customers opted in among those who granted the channel."""
    holders: Counter[str] = Counter()
    accounts: dict[str, set[str]] = {}
    for grant in consent_service.grants_of_client(session, client_id=client_id):
        if consent_service.is_usable(grant, now):
            for scope in consent_service.scopes_of(grant):
                if scope.startswith("marketing."):
                    channel = scope.removeprefix("marketing.")
                    holders[channel] += 1
                    accounts.setdefault(channel, set()).add(grant.account_id)
    rates: dict[str, float | None] = {}
    for channel in CHANNELS:
        if not holders[channel]:
            continue
        opted = len(session.exec(select(ChannelPreference.account_id).where(
            ChannelPreference.client_id == client_id, ChannelPreference.channel == channel,
            col(ChannelPreference.opted_in).is_(True),
            col(ChannelPreference.account_id).in_(accounts[channel]))).all())
        shown = holders[channel] >= k and (opted == 0 or opted >= k) \
            and (holders[channel] - opted == 0 or holders[channel] - opted >= k)
        rates[channel] = round(opted / holders[channel], 3) if shown else None
    return rates


def figures_for(session: Session, *, client_id: str, now: datetime, threshold: int,
                since: datetime | None = None) -> Figures:
    """The company's dashboard figures, suppressed below `threshold`."""
    tallies = _tally(session, client_id, since)
    return Figures(
        threshold=threshold,
        grants={c: _shown(tallies["grants"][c], threshold) for c in GRANT_CHANGES},
        opt_in_rates=_opt_in_rates(session, client_id, now, threshold),
        pushes={o: _shown(tallies["pushes"][o], threshold)
                for o in ("accepted", "deferred", "refused", "sent")},
        refusals_by_rule=refusals_by_rule(tallies["refusals"], threshold),
        intents={name: _shown(tallies["intents"][name], threshold)
                 for name in ("seen", "answered")},
        offers={name: _shown(tallies["offers"][name], threshold)
                for name in ("sent", "refused", "offers accepted", "offers declined",
                             "invitations sent", "invitations accepted",
                             "invitations declined")},
    )
