"""How every console page is served: a shell at `/test-worker/<path>` and its panels as JSON at
`/test-worker/panels/<path>`.

When reads are open the shell arrives with its panels rendered; otherwise it arrives empty and the page's
script fetches the panels with the key the operator typed (a browser sends no Authorization header when it
navigates). Live updates fetch the same panels again and patch them into the page in place. A page is a
context function (the bounded reads) plus a template holding one macro per panel and an optional `head`
macro (forms that depend only on the request, drawn once).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse
from markupsafe import Markup

from ..api.auth import reads_are_open, require_read
from ..errors import InvalidJob
from .render import env, epoch, trusted

NAV = [
    ("overview", "Overview", "/test-worker"),
    ("jobs", "Jobs", "/test-worker/jobs"),
    ("briefs", "Briefs", "/test-worker/briefs"),
    ("queues", "Queues & types", "/test-worker/queues"),
    ("periodic", "Periodic", "/test-worker/periodic"),
    ("workers", "Workers", "/test-worker/workers"),
]
env.globals["NAV"] = NAV
NO_STORE = {"Cache-Control": "no-store"}


class NotFound(Exception):
    """The page's subject (a job, a brief) does not exist."""


@dataclass(frozen=True)
class Section:
    """A box on a page, filled by the template's macro `panel`; a wide one spans the whole grid row."""

    panel: str
    title: str
    wide: bool = True


@dataclass(frozen=True)
class Page:
    """One console page: `context(request, args)` does its reads (args: path and query parameters) and may
    raise InvalidJob (a bad parameter, answered 400 naming it) or NotFound (404). Pages are declared
    positionally, `Page(path, template, title, context, sections)`, one a line."""

    path: str  # under /test-worker, e.g. "/jobs/{job_id}"
    template: str
    title: str | Callable[[dict[str, str]], str]
    context: Callable[[Request, dict[str, str]], dict[str, Any]]
    sections: tuple[Section, ...]

    @property
    def name(self) -> str:
        """The navigation entry the page belongs to: its path's first segment."""
        return self.path.split("/")[1]

    def title_for(self, args: dict[str, str]) -> str:
        return self.title if isinstance(self.title, str) else self.title(args)


def _args(request: Request) -> dict[str, str]:
    return {**dict(request.query_params), **{k: str(v) for k, v in request.path_params.items()}}


def _panels_url(request: Request) -> str:
    suffix = request.url.path.removeprefix("/test-worker")
    query = urlencode(list(request.query_params.multi_items()))
    return "/test-worker/panels" + suffix + (f"?{query}" if query else "")


def render_panels(request: Request, page: Page, args: dict[str, str]) -> tuple[dict[str, str], dict[str, Any]]:
    context = page.context(request, args)
    module = env.get_template(page.template).make_module(context)
    return {s.panel: str(getattr(module, s.panel)()) for s in page.sections}, context


def _head(page: Page, args: dict[str, str]) -> Markup:
    module = env.get_template(page.template).make_module({"args": args})
    head = getattr(module, "head", None)
    return Markup(str(head(args))) if head is not None else Markup("")


def _problem(exc: Exception) -> tuple[int, str, str | None]:
    if isinstance(exc, NotFound):
        return 404, str(exc), None
    assert isinstance(exc, InvalidJob)
    return 400, str(exc), exc.field


def shell(request: Request, page: Page) -> HTMLResponse:
    """The page; with its panels when reads are open."""
    args = _args(request)
    public = reads_are_open(request)
    panels: dict[str, str] = {}
    status, error, db_now = 200, None, None
    if public:
        try:
            panels, context = render_panels(request, page, args)
            db_now = epoch(context.get("now"))
        except (InvalidJob, NotFound) as exc:
            status, error, _ = _problem(exc)
    html = env.get_template("page.html").render(
        title=page.title_for(args),
        page_name=page.name,
        sections=page.sections,
        head=_head(page, args) if status == 200 else Markup(""),
        panels=trusted(panels),
        public=public,
        has_keys=bool(request.app.state.settings.keys),
        panels_url=_panels_url(request),
        db_now=db_now,
        error=error,
    )
    return HTMLResponse(html, status_code=status, headers=NO_STORE)


def panels_json(request: Request, page: Page) -> JSONResponse:
    """{seq, db_now, panels: {name: html}}; a bad parameter answers 400 naming it, a missing subject 404."""
    try:
        panels, context = render_panels(request, page, _args(request))
    except (InvalidJob, NotFound) as exc:
        status, message, name = _problem(exc)
        body: dict[str, Any] = {"error": message}
        if name:
            body["detail"] = [{"field": name, "in": "query", "reason": message}]
        return JSONResponse(body, status_code=status, headers=NO_STORE)
    seq = request.app.state.feed.seq
    return JSONResponse({"seq": seq, "db_now": epoch(context.get("now")), "panels": panels}, headers=NO_STORE)


def add_pages(router: APIRouter, pages: list[Page]) -> None:
    """Routes for each page: its shell and its panels (the panels need the key when reads are closed)."""
    for page in pages:
        router.add_api_route(
            f"/test-worker{page.path}", _shell_route(page), methods=["GET"], response_class=HTMLResponse
        )
        router.add_api_route(
            f"/test-worker/panels{page.path}",
            _panels_route(page),
            methods=["GET"],
            dependencies=[Depends(require_read)],
        )


def _shell_route(page: Page) -> Callable[[Request], HTMLResponse]:
    def show(request: Request) -> HTMLResponse:
        return shell(request, page)

    return show


def _panels_route(page: Page) -> Callable[[Request], JSONResponse]:
    def fragments(request: Request) -> JSONResponse:
        return panels_json(request, page)

    return fragments
