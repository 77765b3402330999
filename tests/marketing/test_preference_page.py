"""The preference page: one card per company and channel, every control named, topics as
choices, caps as numbers, and one switch that stops all marketing."""

from __future__ import annotations

from html.parser import HTMLParser
from typing import Any

from litestar import Litestar
from litestar.testing import TestClient

from tests.factories import Browser
from tests.marketing.conftest import SALES, preferences_form
from tests.oauth.flows import Company


class _Controls(HTMLParser):
    """Every form control on a page, and whether something gives it an accessible name."""

    def __init__(self) -> None:
        super().__init__()
        self.controls: list[dict[str, str]] = []
        self.labelled_ids: set[str] = set()
        self._label_depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {k: v or "" for k, v in attrs}
        if tag == "label":
            self._label_depth += 1
            if found.get("for"):
                self.labelled_ids.add(found["for"])
        elif tag in ("input", "select", "textarea") and found.get("type") != "hidden":
            self.controls.append({**found, "wrapped": "yes" if self._label_depth else ""})

    def handle_endtag(self, tag: str) -> None:
        if tag == "label":
            self._label_depth -= 1

    def unnamed(self) -> list[str]:
        return [c.get("name", "?") for c in self.controls
                if not (c["wrapped"] or c.get("id") in self.labelled_ids
                        or c.get("aria-label"))]


def _controls(html: str) -> _Controls:
    parser = _Controls()
    parser.feed(html)
    return parser


def _push(client: TestClient[Litestar], connected: dict[str, Any], key: str) -> Any:
    return client.post("/api/v1/pushes", headers={"Authorization": f"Bearer {connected['token']}"},
                       json={"subject": connected["subject"], "channel": "inbox",
                             "topic": "sales", "purpose": SALES, "title": "Sale",
                             "body": "Half price.", "idempotency_key": key})


def test_every_control_on_the_page_has_a_name_a_screen_reader_can_say(
    customer_browser: Browser, connected: dict[str, Any],
) -> None:
    page = _controls(customer_browser.client.get("/preferences").text)

    assert len(page.controls) > 15
    assert page.unnamed() == []


def test_each_company_and_channel_has_its_own_card_with_number_caps(
    customer_browser: Browser, connected: dict[str, Any], shop: Company,
) -> None:
    html = customer_browser.client.get("/preferences").text
    page = _controls(html)

    assert "Corner Shop <span class=\"muted\">· e-mail</span>" in html
    assert "Corner Shop <span class=\"muted\">· your vault inbox</span>" in html
    caps = [c for c in page.controls if c.get("name", "").startswith("cap_day:")]
    assert len(caps) == 3  # all companies together, e-mail, inbox
    assert all(c["type"] == "number" for c in caps)
    assert "Your app's https address" not in html
    assert "Web address of your app" in html


def test_topics_are_chosen_from_the_customers_interests_and_kept(
    customer_browser: Browser, connected: dict[str, Any], shop: Company,
) -> None:
    customer_browser.submit("/profile", {"email": "ada@example.org", "interests": "cycling"})
    key = f"{shop.client_id}:inbox"

    html = customer_browser.client.get("/preferences").text
    assert f'name="topic:{key}" value="cycling"' in html

    saved = customer_browser.submit("/preferences", {
        **preferences_form(shop, inbox__optin="on"), f"topics_mode:{key}": "chosen",
        f"topic:{key}": "cycling", f"topics_more:{key}": "Sales"})
    assert saved.status_code == 303
    html = customer_browser.client.get("/preferences").text
    assert f'name="topic:{key}" value="cycling" checked' in html
    assert f'name="topic:{key}" value="sales" checked' in html


def test_choosing_only_some_topics_but_ticking_none_is_explained_beside_the_topics(
    customer_browser: Browser, connected: dict[str, Any], shop: Company,
) -> None:
    key = f"{shop.client_id}:inbox"
    response = customer_browser.submit("/preferences", {
        **preferences_form(shop, inbox__optin="on"), f"topics_mode:{key}": "chosen"})

    assert response.status_code == 400
    assert "nothing was saved" in response.text
    assert f'id="topics:{key}-error"' in response.text


def test_a_cap_that_is_not_a_number_is_tied_to_its_own_input(
    customer_browser: Browser, connected: dict[str, Any], shop: Company,
) -> None:
    key = f"{shop.client_id}:inbox"
    response = customer_browser.submit("/preferences",
                                       preferences_form(shop, inbox__cap_day="lots"))

    assert response.status_code == 400
    assert f'aria-describedby="c2-caps-hint cap_day:{key}-error"' in response.text
    assert 'aria-invalid="true"' in response.text


def test_stop_all_marketing_refuses_every_push_until_it_is_turned_off(
    customer_browser: Browser, connected: dict[str, Any], shop: Company,
    mail_client: TestClient[Litestar],
) -> None:
    customer_browser.submit("/preferences", {**preferences_form(shop, inbox__optin="on"),
                                             "stop_all": "on"})
    assert 'name="stop_all" id="stop_all" checked' in \
        customer_browser.client.get("/preferences").text
    refused = _push(mail_client, connected, "a")
    assert refused.status_code == 403
    assert "push.attention-budget-day" in refused.json()["errors"]

    customer_browser.submit("/preferences", preferences_form(shop, inbox__optin="on"))

    assert _push(mail_client, connected, "b").status_code == 202


def test_quiet_hours_with_a_start_but_no_end_are_explained_in_the_customers_language(
    customer_browser: Browser, connected: dict[str, Any], shop: Company,
) -> None:
    customer_browser.client.cookies.set("cmr_lang", "de")
    response = customer_browser.submit("/preferences", preferences_form(
        shop, inbox__optin="on", inbox__quiet_start="22:00", inbox__quiet_end=""))

    assert response.status_code == 400
    assert "geben Sie Beginn und Ende der Ruhezeit an" in response.text
    assert "es wurde nichts gespeichert" in response.text
