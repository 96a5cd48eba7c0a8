"""The review page's routes: each request checked, read from the store, rendered.

``App`` is called with a ``Request`` and returns a ``Response``, so tests
drive it without a socket; ``serve`` puts it behind ``http.server``.
"""

from __future__ import annotations

import re
import sys
import traceback
from collections.abc import Callable
from importlib import resources
from typing import Any
from urllib.parse import quote, unquote

from jinja2 import Environment, PackageLoader, StrictUndefined

from strategystore import _render
from strategystore._console import describe
from strategystore.errors import (
    CorruptDocumentError,
    InvalidBriefIdError,
    StoreUnavailableError,
    StrategyStoreError,
    VersionNotFoundError,
)
from strategystore.files import FileStore
from strategystore.models import MAX_VERSION, Status
from strategystore.store import BaseStore
from strategystore.web._http import Address, Refusal, Request, Response, new_token, same_token
from strategystore.web._markdown import render as markdown
from strategystore.web._pages import (
    PAGE_SIZE,
    NotFound,
    actions_for,
    brief_rows,
    check_findings,
    diff_rows,
    document,
    location_of,
    metadata_rows,
    neighbours,
    timeline,
)

__all__ = ["ACTIONS", "App"]

#: What a form may ask of a version, and its button's label.
ACTIONS = {
    "approve": "Approve",
    "reject": "Reject",
    "withdraw": "Withdraw",
    "new-draft": "New draft from this version",
}

_VERSION = re.compile(r"[1-9][0-9]*")
_PAGE = re.compile(r"[1-9][0-9]{0,8}")
_STYLESHEET = "style.css"


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("strategystore.web", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["markdown"] = markdown
    env.filters["minute"] = lambda moment: f"{_render.minute(moment)} UTC"
    env.filters["iso"] = _render.iso
    env.filters["brief_url"] = brief_url
    return env


def brief_url(brief_id: str) -> str:
    """The address of a brief's timeline, its id percent-encoded."""
    return f"/briefs/{quote(brief_id, safe='')}"


class App:
    """The review page over ``store``, answering as ``address``.

    Args:
        store: the store every page reads, on every request.
        address: the address the server answers on; other ``Host`` and
            ``Origin`` headers are refused.
        allow_write: offer and accept the actions (approve, reject, withdraw,
            new draft); without it every POST is refused.
        token: the secret every action's form must carry; a fresh one by default.
    """

    def __init__(
        self,
        store: BaseStore,
        address: Address,
        *,
        allow_write: bool = False,
        token: str | None = None,
    ) -> None:
        self.store = store
        self.address = address
        self.allow_write = allow_write
        self.token = token if token is not None else new_token()
        self._env = _environment()
        self._stylesheet = (
            resources.files("strategystore.web").joinpath("static", _STYLESHEET).read_bytes()
        )

    def __call__(self, request: Request) -> Response:
        """Answer ``request``: a page, a redirect after an action, or a refusal."""
        try:
            self.address.check(request)
            return self._route(request)
        except Refusal as exc:
            return self._error(exc.status, exc.message)
        except NotFound as exc:
            return self._error(404, str(exc))
        except InvalidBriefIdError as exc:
            return self._error(400, describe(exc))
        except VersionNotFoundError as exc:
            return self._error(404, describe(exc))
        except (StoreUnavailableError, OSError) as exc:
            return self._error(503, describe(exc))
        except (CorruptDocumentError, StrategyStoreError) as exc:
            return self._error(500, describe(exc))
        except Exception:
            traceback.print_exc(file=sys.stderr)
            return self._error(500, "the server failed to answer; the details are in its log")

    # -- routing -------------------------------------------------------------

    def _route(self, request: Request) -> Response:
        parts = _segments(request.path)
        if request.method not in ("GET", "HEAD", "POST"):
            raise Refusal(405, f"{request.method} is not answered here")
        if len(parts) == 5 and parts[:2] == ["", "briefs"]:
            return self._action(request, parts[2], _version(parts[3]), parts[4])
        if request.method == "POST":
            raise Refusal(405, "only an action's form is sent with POST")
        page = self._reads().get(parts[1] if len(parts) == 2 else "")
        if len(parts) == 2 and page is not None:
            return page(request)
        if len(parts) >= 3 and parts[:2] == ["", "briefs"]:
            brief = parts[2]
            if len(parts) == 3 or (len(parts) == 4 and parts[3] == ""):
                return self._timeline(brief)
            if len(parts) == 4 and parts[3] == "diff":
                return self._diff(request, brief)
            if len(parts) == 4 and parts[3].endswith(".json"):
                return self._raw(brief, _version(parts[3].removesuffix(".json")))
            if len(parts) == 4:
                return self._version(brief, _version(parts[3]))
        if parts == ["", "static", _STYLESHEET]:
            return Response(200, self._stylesheet, "text/css; charset=utf-8")
        raise NotFound(f"there is no page at {request.path}")

    def _reads(self) -> dict[str, Callable[[Request], Response]]:
        return {"": self._briefs, "check": self._check}

    # -- pages ---------------------------------------------------------------

    def _briefs(self, request: Request) -> Response:
        given = request.query.get("page", "1")
        if not _PAGE.fullmatch(given):
            raise Refusal(400, f"{given!r} is not a page number")
        page = int(given)
        rows, pages, total = brief_rows(self.store, page)
        return self._page(
            "briefs.html",
            title="Briefs",
            rows=rows,
            page=page,
            pages=pages,
            total=total,
            first=(page - 1) * PAGE_SIZE + 1,
        )

    def _timeline(self, brief: str) -> Response:
        entries = timeline(self.store, brief)
        numbers = [entry.version for entry in entries]
        return self._page(
            "timeline.html",
            title=f"{brief}: versions",
            brief=brief,
            entries=entries,
            numbers=numbers,
            compare_to=numbers[0],
            compare_from=numbers[1] if len(numbers) > 1 else numbers[0],
        )

    def _version(self, brief: str, version: int) -> Response:
        doc = document(self.store, brief, version)
        older, newer = neighbours(self.store, doc)
        return self._page(
            "version.html",
            title=f"{brief} version {version}",
            doc=doc,
            older=older,
            newer=newer,
            location=location_of(self.store, doc),
            metadata=metadata_rows(doc),
            actions=actions_for(doc.status) if self.allow_write else [],
            labels=ACTIONS,
        )

    def _raw(self, brief: str, version: int) -> Response:
        data = self.store.get_stored_bytes(brief, version)
        if data is None:
            document(self.store, brief, version)  # raises NotFound, naming what
            raise NotFound(f"version {version} of brief {brief!r} does not exist")
        return Response(200, data, "application/json")

    def _diff(self, request: Request, brief: str) -> Response:
        query = request.query
        missing = [name for name in ("from", "to") if not query.get(name)]
        if missing:
            raise Refusal(400, f"a diff needs both versions: ?from=V1&to=V2 (missing {missing[0]})")
        old = document(self.store, brief, _version(query["from"]))
        new = document(self.store, brief, _version(query["to"]))
        change, rows = diff_rows(old, new)
        return self._page(
            "diff.html",
            title=f"{brief}: version {old.version} against {new.version}",
            brief=brief,
            old=old,
            new=new,
            changed=change.changed,
            rows=rows,
            numbers=self.store.list_version_numbers(brief),
        )

    def _check(self, request: Request) -> Response:
        store = self.store
        if not isinstance(store, FileStore):
            return self._page("check.html", title="Check", data_dir=None, findings=[])
        findings = check_findings(store.data_dir)
        return self._page(
            "check.html",
            title="Check",
            data_dir=str(store.data_dir),
            findings=findings,
            problems=sum(1 for finding in findings if not finding[3]),
        )

    # -- actions -------------------------------------------------------------

    def _action(self, request: Request, brief: str, version: int, action: str) -> Response:
        if request.method != "POST":
            raise Refusal(405, "an action is sent with its form (POST)")
        if not self.allow_write:
            raise Refusal(
                403, "this server is read-only; start it with --allow-write to change versions"
            )
        if action not in ACTIONS:
            raise NotFound(f"there is no action {action!r}")
        form = request.form()
        if not same_token(form.get("token"), self.token):
            raise Refusal(403, "the form's token is missing or out of date; reload the page")
        reason = form.get("reason", "").strip()
        if action in ("reject", "withdraw") and not reason:
            raise Refusal(400, f"to {action} a version, give a reason")
        try:
            target = self._apply(brief, version, action, reason)
        except (VersionNotFoundError, InvalidBriefIdError, StoreUnavailableError):
            raise
        except (StrategyStoreError, ValueError) as exc:
            return self._error(409, describe(exc))
        location = f"{brief_url(brief)}/{target}"
        return Response(303, b"", "text/plain; charset=utf-8", [("Location", location)])

    def _apply(self, brief: str, version: int, action: str, reason: str) -> int:
        """Do ``action`` through the store's public methods; the version to show after it."""
        store = self.store
        if action == "approve":
            return store.approve(brief, version).version
        if action == "reject":
            return store.reject(brief, version, reason=reason).version
        if action == "withdraw":
            return store.withdraw(brief, version, reason=reason).version
        source = store.get_strategy(brief, version)
        if source is None:
            raise VersionNotFoundError(brief, version)
        return store.create_next(brief, source.sections, source.metadata).version

    # -- rendering -----------------------------------------------------------

    def _page(self, template: str, *, status: int = 200, **context: Any) -> Response:
        html = self._env.get_template(template).render(
            allow_write=self.allow_write,
            token=self.token,
            Status=Status,
            **context,
        )
        return Response(status, html.encode("utf-8"))

    def _error(self, status: int, message: str) -> Response:
        title = "Not found" if status == 404 else "Refused" if status < 500 else "Error"
        response = self._page("error.html", status=status, title=title, message=message)
        if status == 405:
            response.headers.append(("Allow", "GET, HEAD, POST"))
        return response


def _segments(path: str) -> list[str]:
    """The path's segments, each percent-decoded (the first is always ``""``)."""
    try:
        return [unquote(part, errors="strict") for part in path.split("/")]
    except UnicodeDecodeError:
        raise Refusal(400, "the address is not UTF-8") from None


def _version(text: str) -> int:
    """A version in the address: ``[1-9][0-9]*`` below ``2**31``, else 400."""
    if _VERSION.fullmatch(text) and len(text) <= len(str(MAX_VERSION)) and int(text) < MAX_VERSION:
        return int(text)
    raise Refusal(400, f"{text!r} is not a version number (1 to {MAX_VERSION - 1})")
