"""What the company's dashboard shows: each group of figures with its words and its chart.

The figures' keys stay the API's (`given`, `accepted`…); here they get the words a person reads,
in the page's language, and a bar chart each.
"""

from __future__ import annotations

from dataclasses import dataclass

from cmr_vault.i18n import gettext as _
from cmr_vault.measurement.service import OTHER_RULES, UNNAMED_RULE, Figure, Figures
from cmr_vault.web import charts


def _names() -> dict[str, str]:
    return {
        "given": _("given"),
        "renewed": _("renewed"),
        "narrowed": _("narrowed"),
        "widened": _("widened"),
        "expired": _("expired"),
        "revoked": _("revoked"),
        "relinquished": _("given up by you"),
        "accepted": _("accepted"),
        "deferred": _("deferred (quiet hours, caps)"),
        "refused": _("refused"),
        "sent": _("delivered"),
        "seen": _("intents you saw"),
        "answered": _("intents you answered"),
        "offers accepted": _("offers accepted"),
        "offers declined": _("offers declined"),
        "invitations sent": _("invitations sent"),
        "invitations refused": _("invitations refused"),
        "invitations accepted": _("invitations accepted"),
        "invitations declined": _("invitations declined"),
        OTHER_RULES: _("other rules"),
        UNNAMED_RULE: _("no rule named"),
    }


@dataclass(frozen=True)
class Row:
    """One line of a dashboard table."""

    name: str
    figure: Figure


@dataclass(frozen=True)
class Group:
    """A table of figures with its total (when the parts add up to one) and its chart."""

    key: str
    title: str
    rows: list[Row]
    total: Figure | None
    chart: charts.Chart


def _group(
    key: str,
    title: str,
    description: str,
    group: dict[str, Figure],
    *,
    with_total: bool,
    value_label: str,
) -> Group:
    names = _names()
    rows = [Row(names.get(name, name), figure) for name, figure in group.items()]
    return Group(
        key=key,
        title=title,
        rows=rows,
        total=Figures.total(group) if with_total else None,
        chart=charts.horizontal_bars(
            title,
            description,
            [(row.name, row.figure.value) for row in rows],
            value_label=value_label,
            category_label="",
        ),
    )


def dashboard_charts(figures: Figures) -> list[Group]:
    """The dashboard's groups, in the order the page shows them."""
    count = _("number of times")
    groups = [
        _group(
            "grants",
            _("Consent changes"),
            _(
                "How often customers gave, renewed, changed "
                "or ended their consent for you, by kind of change."
            ),
            figures.grants,
            with_total=True,
            value_label=count,
        ),
        _group(
            "pushes",
            _("Messages you sent, by decision"),
            _("Each message you pushed was decided once: accepted, deferred or refused."),
            figures.decided_pushes,
            with_total=True,
            value_label=_("messages"),
        ),
    ]
    if figures.refusals_by_rule:
        groups.append(
            _group(
                "refusals",
                _("Refused messages, by the rule that refused them"),
                _(
                    "Each refused message counted once, under the first rule that refused it; "
                    "together they make the refused messages above."
                ),
                figures.refusals_by_rule,
                with_total=True,
                value_label=_("messages"),
            )
        )
    groups += [
        _group(
            "intents",
            _("Customers' intents"),
            _("Intents you saw and intents you answered with an offer."),
            figures.intents,
            with_total=False,
            value_label=_("intents"),
        ),
        _group(
            "offers",
            _("Offers and invitations"),
            _("What happened to your offers and invitations."),
            figures.offers,
            with_total=False,
            value_label=count,
        ),
    ]
    return groups
