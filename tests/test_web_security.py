"""The review page's security rules: each test fails when its rule is removed.

Documents are untrusted text, and a local server is reachable by any page the
reviewer's browser opens: no document text may become markup, and no request
that does not come from the page itself may read or change anything.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("jinja2")
pytest.importorskip("markdown_it")

from strategystore import FileStore, Section, Status
from strategystore.web import App, Request, Response
from strategystore.web._markdown import render, safe_link
from tests.test_web import ADDRESS, FORM, HOST, TOKEN, Element, get, parse, post

HOSTILE_BODY = "\n\n".join(
    [
        "<script>alert('body')</script>",
        '<img src="x" onerror="alert(1)">',
        '<a href="javascript:alert(2)" onclick="alert(3)">raw link</a>',
        "[md link](javascript:alert(4))",
        "[spaced](  JaVaScRiPt:alert(5))",
        "[entity](jav&#x09;ascript:alert(6))",
        "[data](data:text/html;base64,PHNjcmlwdD5hbGVydCg3KTwvc2NyaXB0Pg==)",
        "![image](javascript:alert(8))",
        "<javascript:alert(9)>",
        "[vb](vbscript:msgbox(10))",
        "[ref]\n\n[ref]: javascript:alert(11)",
        '<div style="background:url(javascript:alert(12))">styled</div>',
        "<svg onload=alert(13)></svg>",
        "[fine](https://example.com/ok)",
    ]
)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[FileStore]:
    with FileStore(tmp_path / "data", lock_timeout=5.0) as opened:
        opened.create_next(
            "hostile",
            [
                Section(
                    key="s<script>", title="<script>alert('title')</script>", body=HOSTILE_BODY
                ),
                Section(key="plain", title='" onmouseover="alert(1)', body="fine"),
            ],
            {
                "</script><script>alert('meta')</script>": "</script><script>alert(1)</script>",
                "attr": '" onfocus="alert(1)" x="',
            },
        )
        opened.create_next("hostile", [Section(key="plain", title="t", body="<b>changed</b>")])
        opened.reject("hostile", 2, reason="<script>alert('reason')</script><i onclick=x>r</i>")
        opened.create_next("hostile", [Section(key="plain", title="t", body="fine")])
        yield opened


@pytest.fixture
def app(store: FileStore) -> App:
    return App(store, ADDRESS, allow_write=True, token=TOKEN)


def assert_inert(page: Element) -> None:
    """No element of the page runs script: no script, no on* attribute, no javascript: URL."""
    for element in page.walk():
        assert element.tag not in ("script", "iframe", "object", "embed", "svg"), element
        for name, value in element.attrs.items():
            assert not name.lower().startswith("on"), (element.tag, name, value)
            assert name.lower() != "style", (element.tag, name, value)
            if name in ("href", "src", "action", "formaction") and value is not None:
                scheme = value.split(":", 1)[0].lower() if ":" in value else ""
                assert scheme in ("", "http", "https", "mailto"), (element.tag, name, value)


HOSTILE_PAGES = [
    "/",
    "/briefs/hostile",
    "/briefs/hostile/1",
    "/briefs/hostile/2",
    "/briefs/hostile/diff?from=1&to=2",
    "/briefs/hostile/diff?from=2&to=1",
    "/briefs/hostile/diff?from=2&to=3",
]


@pytest.mark.parametrize("target", HOSTILE_PAGES)
def test_hostile_document_text_never_becomes_markup(app: App, target: str) -> None:
    response = get(app, target)
    assert response.status == 200
    assert_inert(parse(response))


def test_hostile_text_is_shown_as_text(app: App) -> None:
    page = parse(get(app, "/briefs/hostile/1"))
    sections = page.find("article", id="sections")
    assert "<script>alert('body')</script>" in sections.text
    assert "<script>alert('title')</script>" in sections.find_all("h2")[0].text
    assert page.find("a", href="https://example.com/ok").text == "fine"
    metadata = page.find("table", id="metadata").text
    assert "</script><script>alert('meta')</script>" in metadata
    reason = parse(get(app, "/briefs/hostile/2"))
    assert "<script>alert('reason')</script>" in reason.find("dd", class_="reason").text


def test_markdown_links_are_limited_to_web_and_mail_schemes() -> None:
    html = render("[a](javascript:alert(1)) [b](https://x.example) [c](mailto:a@b.example)")
    assert "javascript" not in html.split("[a]")[0]
    assert 'href="https://x.example"' in html
    assert 'href="mailto:a@b.example"' in html
    for url in ("javascript:x", "JAVASCRIPT:x", "java\tscript:x", "data:text/html,x", "file:///x"):
        assert not safe_link(url), url
    for url in ("https://x", "http://x", "mailto:a@b", "/briefs/x", "#top", "notes.html"):
        assert safe_link(url), url


def test_markdown_raw_html_is_off() -> None:
    html = render("<b onclick='x'>bold</b>\n\n<script>alert(1)</script>")
    assert "<b" not in html and "<script" not in html
    assert "&lt;script&gt;" in html


def test_a_diff_escapes_what_it_compares(app: App) -> None:
    response = get(app, "/briefs/hostile/diff?from=1&to=2")
    table = parse(response).find("table", id="diff")
    assert not table.find_all("b")
    assert "<b>changed</b>" in table.text


# -- headers ------------------------------------------


@pytest.mark.parametrize("target", ["/", "/briefs/hostile/1", "/nope", "/briefs/hostile/1.json"])
def test_every_answer_sends_a_policy_without_script(app: App, target: str) -> None:
    response = get(app, target)
    policy = response.header("Content-Security-Policy")
    assert policy is not None
    directives = {part.split()[0]: part.split()[1:] for part in policy.split(";") if part.strip()}
    assert "'unsafe-inline'" not in directives.get("script-src", [])
    assert "script-src" not in directives
    assert directives["default-src"] == ["'none'"]
    assert directives["frame-ancestors"] == ["'none'"]
    assert "'unsafe-inline'" not in policy
    assert response.header("X-Content-Type-Options") == "nosniff"
    assert response.header("Referrer-Policy") == "same-origin"


def test_the_pages_carry_no_inline_script_or_style(app: App) -> None:
    for target in HOSTILE_PAGES:
        page = parse(get(app, target))
        assert not page.find_all("script")
        assert not page.find_all("style")


def test_the_raw_view_is_json_and_not_sniffed(app: App) -> None:
    response = get(app, "/briefs/hostile/1.json")
    assert response.content_type == "application/json"
    assert response.header("X-Content-Type-Options") == "nosniff"
    assert b"<script>" in response.body  # as it is in the file, but never as HTML


# -- Host and Origin ------------------------------------------


FOREIGN_HOSTS = [
    "evil.example:8765",
    "evil.example",
    "127.0.0.1",
    "127.0.0.1:9999",
    "127.0.0.1.evil.example:8765",
    "user@127.0.0.1:8765",
    "127.0.0.1:8765/evil",
    "127.0.0.1:8765?evil",
    "127.0.0.1:8765#evil",
    "",
]


@pytest.mark.parametrize("host", FOREIGN_HOSTS)
def test_a_read_with_a_foreign_host_is_refused(app: App, host: str) -> None:
    response = app(Request("GET", "/briefs/hostile/1", {"host": host}))
    assert 400 <= response.status < 500
    assert response.header("Location") is None
    assert b"alert('body')" not in response.body


def test_a_read_without_a_host_is_refused(app: App) -> None:
    assert app(Request("GET", "/", {})).status == 400


@pytest.mark.parametrize(
    "target", ["http://evil.example:8765/briefs/hostile/1", "http://evil.example/"]
)
def test_an_absolute_target_naming_another_host_is_refused(app: App, target: str) -> None:
    response = get(app, target)
    assert 400 <= response.status < 500
    assert b"alert('body')" not in response.body


def test_an_absolute_target_naming_this_server_is_answered(app: App) -> None:
    assert get(app, "http://127.0.0.1:8765/briefs/hostile/1").status == 200


def test_a_path_starting_with_two_slashes_is_a_path(app: App) -> None:
    assert get(app, "//evil.example/briefs/hostile/1").status == 404


@pytest.mark.parametrize("host", FOREIGN_HOSTS)
def test_a_write_with_a_foreign_host_is_refused(app: App, store: FileStore, host: str) -> None:
    headers = {"host": host, "content-type": FORM["content-type"]}
    response = app(Request("POST", "/briefs/hostile/3/approve", headers, f"token={TOKEN}".encode()))
    assert 400 <= response.status < 500
    assert response.header("Location") is None
    assert_still_draft(store)


@pytest.mark.parametrize("host", ["127.0.0.1:8765", "localhost:8765", "LOCALHOST:8765"])
def test_the_served_address_is_answered(app: App, host: str) -> None:
    assert app(Request("GET", "/", {"host": host})).status == 200


FOREIGN_ORIGINS = [
    "http://evil.example",
    "http://evil.example:8765",
    "https://127.0.0.1:8765",
    "http://127.0.0.1:9999",
    "null",
]


@pytest.mark.parametrize("origin", FOREIGN_ORIGINS)
def test_a_read_from_a_foreign_origin_is_refused(app: App, origin: str) -> None:
    response = get(app, "/briefs/hostile/1", origin=origin)
    assert 400 <= response.status < 500
    assert b"alert('body')" not in response.body


@pytest.mark.parametrize("origin", FOREIGN_ORIGINS)
def test_a_write_from_a_foreign_origin_is_refused(app: App, store: FileStore, origin: str) -> None:
    response = post(app, "/briefs/hostile/3/approve", {"token": TOKEN}, origin=origin)
    assert 400 <= response.status < 500
    assert response.header("Location") is None
    assert_still_draft(store)


def test_a_write_from_the_page_itself_is_accepted(app: App, store: FileStore) -> None:
    response = post(
        app, "/briefs/hostile/3/approve", {"token": TOKEN}, origin="http://127.0.0.1:8765"
    )
    assert response.status == 303
    doc = store.get_strategy("hostile", 3)
    assert doc is not None and doc.status is Status.APPROVED


# -- the token ------------------------------------------


@pytest.mark.parametrize(
    "fields",
    [{}, {"token": ""}, {"token": "wrong"}, {"token": TOKEN + "x"}, {"token": TOKEN[:-1]}],
)
@pytest.mark.parametrize("action", ["approve", "reject", "withdraw", "new-draft"])
def test_a_write_without_the_token_is_refused(
    app: App, store: FileStore, fields: dict[str, str], action: str
) -> None:
    response = post(app, f"/briefs/hostile/3/{action}", {**fields, "reason": "because"})
    assert response.status == 403
    assert response.header("Location") is None
    assert_still_draft(store)
    assert store.list_version_numbers("hostile") == [3, 2, 1]


def test_a_token_in_the_address_is_not_enough(app: App, store: FileStore) -> None:
    response = app(Request("POST", f"/briefs/hostile/3/approve?token={TOKEN}", FORM, b""))
    assert response.status == 403
    assert_still_draft(store)


def test_each_server_has_its_own_token(store: FileStore) -> None:
    assert App(store, ADDRESS).token != App(store, ADDRESS).token


def test_a_form_of_another_content_type_is_refused(app: App, store: FileStore) -> None:
    headers = {**HOST, "content-type": "text/plain"}
    response = app(Request("POST", "/briefs/hostile/3/approve", headers, f"token={TOKEN}".encode()))
    assert 400 <= response.status < 500
    assert_still_draft(store)


def test_a_form_of_too_many_fields_is_refused(app: App, store: FileStore) -> None:
    body = "&".join([f"token={TOKEN}", *(f"f{n}=x" for n in range(30))]).encode()
    response = app(Request("POST", "/briefs/hostile/3/approve", FORM, body))
    assert response.status == 413
    assert_still_draft(store)


def test_an_oversized_form_is_refused(app: App, store: FileStore) -> None:
    body = f"token={TOKEN}&reason={'x' * 70_000}".encode()
    response = app(Request("POST", "/briefs/hostile/3/reject", FORM, body))
    assert response.status == 413
    assert_still_draft(store)


# -- read-only ------------------------------------------


@pytest.mark.parametrize("action", ["approve", "reject", "withdraw", "new-draft"])
@pytest.mark.parametrize("version", [1, 2, 3])
def test_a_read_only_server_refuses_every_write(
    store: FileStore, action: str, version: int
) -> None:
    reader = App(store, ADDRESS, token=TOKEN)
    before = [store.get_stored_bytes("hostile", n) for n in (1, 2, 3)]
    response = post(reader, f"/briefs/hostile/{version}/{action}", {"token": TOKEN, "reason": "r"})
    assert response.status == 403
    assert "read-only" in parse(response).find("p", id="error").text
    assert [store.get_stored_bytes("hostile", n) for n in (1, 2, 3)] == before
    assert store.list_version_numbers("hostile") == [3, 2, 1]


def test_a_read_only_page_carries_no_token(store: FileStore) -> None:
    reader = App(store, ADDRESS, token=TOKEN)
    for target in HOSTILE_PAGES:
        assert TOKEN.encode() not in get(reader, target).body


@pytest.mark.parametrize("target", ["/", "/briefs/hostile", "/briefs/hostile/1", "/check"])
def test_a_post_to_a_page_is_refused(app: App, target: str) -> None:
    assert post(app, target, {"token": TOKEN}).status == 405


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH", "OPTIONS"])
def test_other_methods_are_refused(app: App, store: FileStore, method: str) -> None:
    response: Response = app(Request(method, "/briefs/hostile/3/approve", FORM, b""))
    assert response.status == 405
    assert_still_draft(store)


def assert_still_draft(store: FileStore) -> None:
    doc = store.get_strategy("hostile", 3)
    assert doc is not None and doc.status is Status.DRAFT
