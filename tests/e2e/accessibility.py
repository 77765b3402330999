"""Checks every page state a browser test visits: axe-core finds no critical or serious
violation, and nothing scrolls sideways on a 390 px phone.

axe-core comes inside the `axe-playwright-python` wheel (its `axe.min.js`); it is injected into
the page and run there, so nothing is fetched at test time.
"""

from __future__ import annotations

from typing import Any

from axe_playwright_python.base import AXE_SCRIPT

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}
BLOCKING = ("critical", "serious")


def axe_violations(page: Any) -> list[dict[str, Any]]:
    """axe-core's critical and serious violations on the page as it is now."""
    if not page.evaluate("typeof window.axe === 'object'"):  # once per document, not per check
        page.evaluate(AXE_SCRIPT)
    result = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
    return [v for v in result["violations"] if v.get("impact") in BLOCKING]


def sideways_overflow(page: Any) -> int:
    """How many pixels the page is wider than a 390 px phone's window (0 when it fits)."""
    page.set_viewport_size(PHONE)
    try:
        return int(page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"))
    finally:
        page.set_viewport_size(DESKTOP)


def check_state(page: Any, state: str) -> None:
    """0 critical and 0 serious axe violations at desktop and phone width, and no sideways
    scrolling on the phone; the message names the state and each violation's elements."""
    for size in (DESKTOP, PHONE):
        page.set_viewport_size(size)
        found = axe_violations(page)
        assert not found, f"{state} at {size['width']} px: " + "; ".join(
            f"{v['id']} ({v['impact']}): {[n['target'] for n in v['nodes']][:4]}" for v in found)
    page.set_viewport_size(DESKTOP)
    overflow = sideways_overflow(page)
    assert overflow <= 0, f"{state}: {overflow} px wider than a 390 px phone"
