"""The language switch: a plain link per language, so it works without JavaScript."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, Response, get
from litestar.params import FromPath, QueryParameter
from litestar.response import Redirect

from cmr_vault.i18n.language import LANGUAGES
from cmr_vault.i18n.web import remember_language


def _same_site(target: str) -> str:
    """Only a path on this site: never an open redirect."""
    if target.startswith("/") and not target.startswith(("//", "/\\")):
        return target
    return "/"


class LanguageSwitch(Controller):
    """`/language/de?next=/profile`: remember the choice and go back to the page.

    A GET, because the choice is harmless to change (the worst a forged link does is switch
    the language) and a link works on every page, error pages included, without a form.
    """

    include_in_schema = False  # a link for people, not the machine API

    @get("/language/{language:str}", sync_to_thread=False)
    def switch(
        self,
        request: Request[Any, Any, Any],
        language: FromPath[str],
        next_: Annotated[str, QueryParameter(name="next")] = "/",
    ) -> Response[Any]:
        """Set the language cookie (an unknown language keeps the current one)."""
        response = Redirect(path=_same_site(next_), status_code=303)
        if language in LANGUAGES:
            secure = request.app.state.runtime.settings.secure_cookies
            remember_language(response, language, secure=secure)
        return response
