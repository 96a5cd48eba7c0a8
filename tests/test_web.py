"""The review page over a file store and PostgreSQL: every page and action, without a socket."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlencode

import pytest

pytest.importorskip("jinja2")
pytest.importorskip("markdown_it")

from strategystore import FileStore, MemoryStore, Section, Status, StrategyDocument
from strategystore.store import BaseStore
from strategystore.web import Address, App, Request, Response

ADDRESS = Address("127.0.0.1", 8765)
HOST = {"host": "127.0.0.1:8765"}
FORM = {**HOST, "content-type": "application/x-www-form-urlencoded"}
TOKEN = "test-token"
T0 = datetime(2026, 1, 15, 9, 30, tzinfo=UTC)

_VOID = frozenset({"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta"})


@dataclass
class Element:
    """One element of a parsed page: its tag, attributes and text."""

    tag: str
    attrs: dict[str, str | None]
    text: str = ""
    children: list[Element] = field(default_factory=list)

    def find_all(self, tag: str, **attrs: str) -> list[Element]:
        """Every element below this one with ``tag`` and ``attrs`` (``class_`` for class)."""
        wanted = {k.rstrip("_").replace("_", "-"): v for k, v in attrs.items()}
        found = []
        for child in self.children:
            if child.tag == tag and all(_attr_matches(child, k, v) for k, v in wanted.items()):
                found.append(child)
            found += child.find_all(tag, **attrs)
        return found

    def find(self, tag: str, **attrs: str) -> Element:
        """The one element below this one that ``find_all`` finds; fails unless exactly one."""
        found = self.find_all(tag, **attrs)
        assert len(found) == 1, (tag, attrs, len(found))
        return found[0]

    def walk(self) -> Iterator[Element]:
        """This element and every one below it."""
        yield self
        for child in self.children:
            yield from child.walk()


def _attr_matches(element: Element, name: str, value: str) -> bool:
    given = element.attrs.get(name)
    if given is None:
        return False
    return value in given.split() if name == "class" else given == value


class _Parser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Element("#document", {})
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, dict(attrs))
        self.stack[-1].children.append(element)
        if tag not in _VOID:
            self.stack.append(element)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.stack[-1].children.append(Element(tag, dict(attrs)))

    def handle_endtag(self, tag: str) -> None:
        for index in range(len(self.stack) - 1, 0, -1):
            if self.stack[index].tag == tag:
                del self.stack[index:]
                return

    def handle_data(self, data: str) -> None:
        for element in self.stack:
            element.text += data


def parse(response: Response) -> Element:
    """The page ``response`` holds, parsed."""
    parser = _Parser()
    parser.feed(response.body.decode("utf-8"))
    parser.close()
    return parser.root


def get(app: App, target: str, **headers: str) -> Response:
    return app(Request("GET", target, {**HOST, **headers}))


def post(app: App, target: str, fields: dict[str, str], **headers: str) -> Response:
    body = urlencode(fields).encode()
    return app(Request("POST", target, {**FORM, **headers}, body))


def fill(store: BaseStore) -> None:
    """Two briefs: acme with an approved, a rejected and a draft version; globex with one draft."""
    store.create_next(
        "acme",
        [
            Section(key="audience", title="Audience", body="Urban **cyclists**.\n\n- 25-40"),
            Section(key="channels", title="Channels", body="Radio."),
        ],
        {"tone": "friendly", "score": 1},
        now=T0,
    )
    store.approve("acme", 1, now=T0 + timedelta(minutes=5))
    store.create_next(
        "acme",
        [Section(key="audience", title="Audience", body="Office workers.")],
        {"tone": "formal"},
        now=T0 + timedelta(minutes=10),
    )
    store.reject("acme", 2, reason="too narrow", now=T0 + timedelta(minutes=15))
    store.create_next(
        "acme",
        [
            Section(key="audience", title="Audience", body="Urban **cyclists**.\n\n- 25-45"),
            Section(key="channels", title="Channels", body="Radio."),
            Section(key="budget", title="Budget", body="Small."),
        ],
        {"tone": "friendly", "score": 2},
        now=T0 + timedelta(minutes=20),
    )
    store.create_next("globex", [Section(key="goal", title="Goal", body="Grow.")], now=T0)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[FileStore]:
    with FileStore(tmp_path / "data", lock_timeout=5.0) as opened:
        fill(opened)
        yield opened


@pytest.fixture
def app(store: FileStore) -> App:
    return App(store, ADDRESS, token=TOKEN)


@pytest.fixture
def writer(store: FileStore) -> App:
    return App(store, ADDRESS, allow_write=True, token=TOKEN)


def assert_common(page: Element) -> None:
    """What every page has: a title, a main, and the two navigation links."""
    assert page.find("title").text.strip()
    page.find("main")
    assert page.find("a", href="/").text == "Briefs"
    assert page.find("a", href="/check").text == "Check"


# -- the front page ------------------------------------------


def test_the_front_page_lists_each_brief_with_counts_and_statuses(app: App) -> None:
    response = get(app, "/")
    assert response.status == 200
    page = parse(response)
    assert_common(page)
    table = page.find("table", id="briefs")
    rows = table.find("tbody").find_all("tr")
    assert [row.find("a", class_="brief-link").text for row in rows] == ["acme", "globex"]
    acme = rows[0]
    assert acme.find("a", class_="brief-link").attrs["href"] == "/briefs/acme"
    cells = [cell.text.strip() for cell in acme.find_all("td")]
    assert cells[1] == "3"
    assert acme.find("span", class_="status").text == "draft"
    assert "version 1" in cells[3]
    assert "2026-01-15 09:50" in cells[4]
    assert "none yet" in rows[1].text
    assert not page.find_all("a", rel="next")
    assert not page.find_all("a", rel="prev")


def test_the_front_page_of_an_empty_store_says_so(tmp_path: Path) -> None:
    page = parse(get(App(FileStore(tmp_path / "empty"), ADDRESS), "/"))
    assert page.find("p", id="empty")
    assert not page.find("table", id="briefs").find("tbody").find_all("tr")


def test_the_front_page_at_ten_thousand_briefs_paginates() -> None:
    store = MemoryStore()
    docs = [
        StrategyDocument(brief_id=f"brief-{n:05d}", version=1, created_at=T0) for n in range(10_000)
    ]
    store.import_documents(docs)
    app = App(store, ADDRESS)
    first = parse(get(app, "/"))
    rows = first.find("table", id="briefs").find("tbody").find_all("tr")
    assert len(rows) == 100
    assert rows[0].find("a", class_="brief-link").text == "brief-00000"
    assert first.find("a", rel="next").attrs["href"] == "/?page=2"
    assert not first.find_all("a", rel="prev")
    last = parse(get(app, "/?page=100"))
    rows = last.find("table", id="briefs").find("tbody").find_all("tr")
    assert rows[-1].find("a", class_="brief-link").text == "brief-09999"
    assert last.find("a", rel="prev").attrs["href"] == "/?page=99"
    assert not last.find_all("a", rel="next")
    assert get(app, "/?page=101").status == 404


@pytest.mark.parametrize("page", ["0", "x", "-1", "1.5", "99999999999"])
def test_a_bad_page_number_is_refused(app: App, page: str) -> None:
    response = get(app, f"/?page={page}")
    assert response.status == 400
    assert parse(response).find("p", id="error")


# -- the timeline ------------------------------------------


def test_the_timeline_shows_every_version_newest_first(app: App) -> None:
    response = get(app, "/briefs/acme")
    assert response.status == 200
    page = parse(response)
    assert_common(page)
    versions = page.find("ol", id="timeline").find_all("li", class_="version")
    assert [v.attrs["id"] for v in versions] == ["v3", "v2", "v1"]
    assert versions[0].find("a", class_="version-link").attrs["href"] == "/briefs/acme/3"
    badges = [v.find("span", class_="status") for v in versions]
    assert [b.text for b in badges] == ["draft", "rejected", "approved"]
    assert "status-approved" in (badges[2].attrs["class"] or "").split()
    assert "too narrow" in versions[1].text
    assert "2026-01-15 09:40" in versions[1].text
    assert not page.find_all("span", class_="git-commit")


def test_the_compare_form_defaults_to_the_two_newest_versions(app: App) -> None:
    form = parse(get(app, "/briefs/acme")).find("form", id="compare")
    assert form.attrs["method"] == "get"
    assert form.attrs["action"] == "/briefs/acme/diff"
    chosen = {
        select.attrs["name"]: option.attrs["value"]
        for select in form.find_all("select")
        for option in select.find_all("option")
        if "selected" in option.attrs
    }
    assert chosen == {"from": "2", "to": "3"}
    assert form.find("button", type="submit").text == "Compare"


def test_an_unknown_brief_is_a_404_naming_it(app: App) -> None:
    response = get(app, "/briefs/initech")
    assert response.status == 404
    assert "initech" in parse(response).find("p", id="error").text


def test_an_invalid_brief_id_is_refused(app: App) -> None:
    response = get(app, "/briefs/..%2Fetc")
    assert response.status == 400
    assert "../etc" in parse(response).find("p", id="error").text


def git(cwd: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=Ada Reviewer", "-c", "user.email=ada@example.com", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
    )


def test_the_timeline_names_the_commit_that_last_changed_each_version(
    tmp_path: Path, store: FileStore
) -> None:
    git(tmp_path, "init", "-q", "-b", "main")
    git(tmp_path, "add", "-A")
    git(tmp_path, "commit", "-q", "-m", "first")
    store.approve("acme", 3)
    git(tmp_path, "commit", "-q", "-am", "approve 3")
    page = parse(get(App(store, ADDRESS), "/briefs/acme"))
    versions = {v.attrs["id"]: v for v in page.find_all("li", class_="version")}
    commits = {key: v.find("span", class_="git-commit").text for key, v in versions.items()}
    assert commits["v1"] == commits["v2"] != commits["v3"]
    assert "Ada Reviewer" in versions["v3"].text


# -- a version ------------------------------------------


def test_a_version_page_renders_sections_metadata_location_and_seal(
    app: App, store: FileStore
) -> None:
    response = get(app, "/briefs/acme/1")
    assert response.status == 200
    page = parse(response)
    assert_common(page)
    heading = page.find("h1").text
    assert "acme" in heading and "1" in heading
    assert page.find("h1").find("span", class_="status").text == "approved"
    sections = page.find("article", id="sections").find_all("section", class_="section")
    assert [s.find("h2").text for s in sections] == ["Audience", "Channels"]
    assert sections[0].find("strong").text == "cyclists"
    assert sections[0].find("li").text == "25-40"
    rows = page.find("table", id="metadata").find("tbody").find_all("tr")
    assert [(r.find("th").text, r.find("td").text) for r in rows] == [
        ("score", "1"),
        ("tone", '"friendly"'),
    ]
    assert page.find("code", id="location").text == str(store.document_path("acme", 1))
    doc = store.get_strategy("acme", 1)
    assert doc is not None and page.find("code", id="seal").text == doc.content_digest
    assert page.find("a", rel="next").attrs["href"] == "/briefs/acme/2"
    assert not page.find_all("a", rel="prev")
    assert page.find("a", class_="raw").attrs["href"] == "/briefs/acme/1.json"


def test_a_version_page_links_both_neighbours(app: App) -> None:
    page = parse(get(app, "/briefs/acme/2"))
    assert page.find("a", rel="prev").attrs["href"] == "/briefs/acme/1"
    assert page.find("a", rel="next").attrs["href"] == "/briefs/acme/3"


def test_a_read_only_version_page_offers_no_actions(app: App) -> None:
    assert not parse(get(app, "/briefs/acme/3")).find_all("form", class_="action")


def test_an_unknown_version_is_a_404_naming_it(app: App) -> None:
    response = get(app, "/briefs/acme/9")
    assert response.status == 404
    assert "version 9" in parse(response).find("p", id="error").text


@pytest.mark.parametrize("version", ["0", "01", "x", "-1", "2147483648", "1e3"])
def test_a_bad_version_number_is_a_400(app: App, version: str) -> None:
    assert get(app, f"/briefs/acme/{version}").status == 400


def test_the_raw_view_is_the_file_as_json(app: App, store: FileStore) -> None:
    response = get(app, "/briefs/acme/2.json")
    assert response.status == 200
    assert response.content_type == "application/json"
    assert response.body == store.document_path("acme", 2).read_bytes()
    assert get(app, "/briefs/acme/9.json").status == 404


# -- the diff ------------------------------------------


def test_the_diff_shows_changes_side_by_side(app: App) -> None:
    response = get(app, "/briefs/acme/diff?from=1&to=3")
    assert response.status == 200
    page = parse(response)
    assert_common(page)
    table = page.find("table", id="diff", class_="side-by-side")
    header = table.find("thead").find_all("th")
    assert ["Version 1" in header[0].text, "Version 3" in header[1].text] == [True, True]
    cells = [row.find_all("td") for row in table.find("tbody").find_all("tr")]
    pairs = [(row[0], row[1]) for row in cells if len(row) == 2]
    assert any(left.find_all("del") and "25-40" in left.text for left, _ in pairs)
    assert any(right.find_all("ins") and "25-45" in right.text for _, right in pairs)
    assert any(r.find_all("ins") and "Small." in r.text for _, r in pairs)
    text = table.text
    assert "Budget" in text and "(added)" in text
    assert "score" in text
    assert "Channels" in text and "same in both" in text
    assert not page.find_all("p", id="no-changes")


def test_the_diff_of_a_version_with_itself_says_nothing_changed(app: App) -> None:
    page = parse(get(app, "/briefs/acme/diff?from=2&to=2"))
    assert page.find("p", id="no-changes")
    page.find("table", id="diff")


def test_the_diff_shows_status_and_reason_changes(app: App) -> None:
    table = parse(get(app, "/briefs/acme/diff?from=1&to=2")).find("table", id="diff")
    assert "Status" in table.text and "Reason" in table.text
    assert any("too narrow" in ins.text for ins in table.find_all("ins"))


@pytest.mark.parametrize(
    ("query", "status"),
    [("from=1", 400), ("to=1", 400), ("from=x&to=1", 400), ("from=1&to=9", 404), ("", 400)],
)
def test_a_diff_needs_two_existing_versions(app: App, query: str, status: int) -> None:
    assert get(app, f"/briefs/acme/diff?{query}").status == status


# -- check ------------------------------------------


def test_the_check_page_says_when_there_is_nothing_to_fix(app: App) -> None:
    page = parse(get(app, "/check"))
    assert_common(page)
    assert page.find("section", id="findings").find("p", id="no-findings")


def test_the_check_page_lists_each_finding(app: App, store: FileStore) -> None:
    (store.data_dir / "acme" / "01.json").write_text("{}")
    (store.data_dir / "acme" / "notes.md").write_text("hi")
    findings = parse(get(app, "/check")).find("section", id="findings")
    items = findings.find_all("li", class_="finding")
    assert len(items) == 2
    assert any("01.json" in item.text for item in items)
    assert not findings.find_all("p", id="no-findings")


# -- other addresses ------------------------------------------


def test_the_stylesheet_is_served(app: App) -> None:
    response = get(app, "/static/style.css")
    assert response.status == 200
    assert response.content_type.startswith("text/css")
    assert b".status-approved" in response.body


def test_an_unknown_address_is_a_404_page(app: App) -> None:
    response = get(app, "/nothing/here")
    assert response.status == 404
    assert_common(parse(response))


def test_a_damaged_version_is_named_on_the_timeline_and_front_page(
    app: App, store: FileStore
) -> None:
    store.document_path("acme", 2).write_text("{ not json")
    timeline = parse(get(app, "/briefs/acme"))
    damaged = timeline.find("li", id="v2")
    assert damaged.find("span", class_="status").text == "damaged"
    assert timeline.find("li", id="v3").find("span", class_="status").text == "draft"
    front = parse(get(app, "/"))
    assert "cannot be read" in front.find("table", id="briefs").text
    assert get(app, "/briefs/acme/2").status == 500


# -- actions ------------------------------------------


def test_a_writable_page_offers_the_actions_its_status_allows(writer: App) -> None:
    draft = parse(get(writer, "/briefs/acme/3"))
    forms = {form.attrs["id"]: form for form in draft.find_all("form", class_="action")}
    assert set(forms) == {"action-approve", "action-reject", "action-new-draft"}
    approve = forms["action-approve"]
    assert approve.attrs["method"] == "post"
    assert approve.attrs["action"] == "/briefs/acme/3/approve"
    assert approve.find("input", type="hidden", name="token").attrs["value"] == TOKEN
    assert approve.find("button", type="submit").text == "Approve"
    reason = forms["action-reject"].find("input", name="reason")
    assert "required" in reason.attrs
    assert forms["action-new-draft"].find("button").text == "New draft from this version"
    approved = parse(get(writer, "/briefs/acme/1"))
    ids = {form.attrs["id"] for form in approved.find_all("form", class_="action")}
    assert ids == {"action-withdraw", "action-new-draft"}
    assert approved.find("form", id="action-withdraw").find("button").text == "Withdraw"
    rejected = parse(get(writer, "/briefs/acme/2"))
    ids = {form.attrs["id"] for form in rejected.find_all("form", class_="action")}
    assert ids == {"action-new-draft"}


def test_approve_goes_through_the_store_and_redirects_to_the_version(
    writer: App, store: FileStore
) -> None:
    response = post(writer, "/briefs/acme/3/approve", {"token": TOKEN})
    assert response.status == 303
    assert response.header("Location") == "/briefs/acme/3"
    doc = store.get_strategy("acme", 3)
    assert doc is not None and doc.status is Status.APPROVED and doc.content_digest


def test_reject_and_withdraw_keep_their_reason(writer: App, store: FileStore) -> None:
    assert (
        post(writer, "/briefs/acme/3/reject", {"token": TOKEN, "reason": "off-brand"}).status == 303
    )
    assert post(writer, "/briefs/acme/1/withdraw", {"token": TOKEN, "reason": "old"}).status == 303
    rejected, withdrawn = store.get_strategy("acme", 3), store.get_strategy("acme", 1)
    assert rejected is not None and rejected.status_reason == "off-brand"
    assert withdrawn is not None and withdrawn.status is Status.WITHDRAWN
    assert withdrawn.status_reason == "old"


@pytest.mark.parametrize("action", ["reject", "withdraw"])
@pytest.mark.parametrize("reason", [None, "", "   "])
def test_reject_and_withdraw_need_a_reason(
    writer: App, store: FileStore, action: str, reason: str | None
) -> None:
    fields = {"token": TOKEN} if reason is None else {"token": TOKEN, "reason": reason}
    response = post(writer, f"/briefs/acme/3/{action}", fields)
    assert response.status == 400
    assert parse(response).find("p", id="error")
    doc = store.get_strategy("acme", 3)
    assert doc is not None and doc.status is Status.DRAFT


def test_a_new_draft_copies_the_version_and_redirects_to_it(writer: App, store: FileStore) -> None:
    response = post(writer, "/briefs/acme/1/new-draft", {"token": TOKEN})
    assert response.status == 303
    assert response.header("Location") == "/briefs/acme/4"
    source, new = store.get_strategy("acme", 1), store.get_strategy("acme", 4)
    assert source is not None and new is not None
    assert new.status is Status.DRAFT
    assert (new.sections, new.metadata) == (source.sections, source.metadata)


def test_a_refused_action_is_a_409_with_the_stores_message(writer: App, store: FileStore) -> None:
    response = post(writer, "/briefs/acme/2/approve", {"token": TOKEN})
    assert response.status == 409
    message = parse(response).find("p", id="error").text
    assert "rejected" in message and "version 2" in message
    doc = store.get_strategy("acme", 2)
    assert doc is not None and doc.status is Status.REJECTED


def test_an_action_on_a_missing_version_is_a_404(writer: App) -> None:
    assert post(writer, "/briefs/acme/9/approve", {"token": TOKEN}).status == 404
    assert post(writer, "/briefs/acme/9/new-draft", {"token": TOKEN}).status == 404
    assert post(writer, "/briefs/acme/3/publish", {"token": TOKEN}).status == 404


def test_repeating_an_approval_changes_nothing(writer: App, store: FileStore) -> None:
    assert post(writer, "/briefs/acme/1/approve", {"token": TOKEN}).status == 303
    doc = store.get_strategy("acme", 1)
    assert doc is not None and doc.updated_at == T0 + timedelta(minutes=5)


def test_an_action_respects_the_brief_lock(writer: App, store: FileStore, tmp_path: Path) -> None:
    with FileStore(store.data_dir, lock_timeout=0.0) as other:
        impatient = App(other, ADDRESS, allow_write=True, token=TOKEN)
        with store.locks.hold("acme"):
            response = post(impatient, "/briefs/acme/3/approve", {"token": TOKEN})
    assert response.status == 409
    assert "lock" in parse(response).find("p", id="error").text


def test_a_get_of_an_action_address_is_refused(writer: App) -> None:
    response = get(writer, "/briefs/acme/3/approve")
    assert response.status == 405
    assert response.header("Allow") == "GET, HEAD, POST"


@pytest.mark.parametrize("target", ["/", "/briefs/acme", "/check"])
def test_a_data_directory_deleted_while_serving_is_named(
    store: FileStore, writer: App, target: str
) -> None:
    shutil.rmtree(store.data_dir)
    response = get(writer, target)
    assert response.status in (404, 500, 503)
    if response.status != 404:
        assert str(store.data_dir) in parse(response).find("p", id="error").text


def test_an_action_after_the_data_directory_is_deleted_is_refused(
    store: FileStore, writer: App
) -> None:
    shutil.rmtree(store.data_dir)
    response = post(writer, "/briefs/acme/3/approve", {"token": TOKEN})
    assert response.status == 503
    assert str(store.data_dir) in parse(response).find("p", id="error").text


# -- PostgreSQL ------------------------------------------


def test_the_pages_work_over_postgresql(pg_store: BaseStore) -> None:
    fill(pg_store)
    app = App(pg_store, ADDRESS, allow_write=True, token=TOKEN)
    front = parse(get(app, "/"))
    links = front.find("table", id="briefs").find_all("a", class_="brief-link")
    assert [a.text for a in links] == ["acme", "globex"]
    versions = parse(get(app, "/briefs/acme")).find_all("li", class_="version")
    assert [v.attrs["id"] for v in versions] == ["v3", "v2", "v1"]
    page = parse(get(app, "/briefs/acme/1"))
    location = page.find("code", id="location").text
    assert "table" in location and "acme" in location
    diff = parse(get(app, "/briefs/acme/diff?from=1&to=3"))
    assert diff.find("table", id="diff").find_all("ins")
    check = parse(get(app, "/check")).find("section", id="findings")
    assert "data directories" in check.text
    assert get(app, "/briefs/acme/2.json").content_type == "application/json"
    assert post(app, "/briefs/acme/3/approve", {"token": TOKEN}).status == 303
    assert post(app, "/briefs/acme/2/approve", {"token": TOKEN}).status == 409
