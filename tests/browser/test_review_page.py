"""The review page in a real browser: a reviewer's clicks, every page drawn, hostile text inert."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from strategystore import FileStore, Status
from strategystore.store import BaseStore
from tests.browser import png
from tests.browser.conftest import BRIEF, Served, fill, serving

if TYPE_CHECKING:
    from playwright.sync_api import Page, Request, Response


@pytest.fixture(params=["file", "postgres"])
def reviewed(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Served, BaseStore]]:
    """A writable server over the briefs of ``fill``, in a data directory or a PostgreSQL table.

    Yields the server and a handle on the same store, to see what the clicks stored.
    """
    store: BaseStore
    if request.param == "file":
        store = FileStore(tmp_path / "data", durable=False)
        argument = str(tmp_path / "data")
    else:
        from strategystore.postgres import PostgresStore  # noqa: PLC0415

        dsn: str = request.getfixturevalue("pg_dsn")
        table: str = request.getfixturevalue("pg_table")
        store = PostgresStore(dsn, table=table, lock_timeout=5.0)
        argument = f"{dsn}{'&' if '?' in dsn else '?'}table={table}"
    try:
        fill(store)
        with serving(argument, tmp_path / "serve.log", allow_write=True) as served:
            yield served, store
    finally:
        store.close()


def act(page: Page, action: str, button: str, *, reason: str | None = None) -> int:
    """Press an action's button (typing ``reason`` first); the status of the POST's answer.

    Fails unless the answer is a redirect (303) or a refusal (409) page.
    """
    form = page.locator(f"#action-{action}")
    if reason is not None:
        form.locator("input[name=reason]").fill(reason)

    def posted(response: Response) -> bool:
        return response.request.method == "POST" and response.frame == page.main_frame

    with page.expect_response(posted) as answer:
        form.get_by_role("button", name=button).click()
    status = answer.value.status
    page.wait_for_load_state()
    assert status in (303, 409), f"{button} answered {status}: {page.locator('main').inner_text()}"
    return status


def badge(page: Page, status: str) -> None:
    """Wait until the page's main part shows the status badge ``status``."""
    page.locator(f"main .status.status-{status}").first.wait_for()


# -- a reviewer's path ---------------------------------------------------------------


def test_a_reviewer_reads_compares_approves_and_rejects_by_clicking(
    page: Page, reviewed: tuple[Served, BaseStore]
) -> None:
    served, store = reviewed
    page.goto(served.at("/"))
    assert page.locator("#briefs tbody tr").count() == 2
    open_the_brief(page, served)
    read_the_timeline_and_a_version(page, served)
    open_the_brief(page, served)
    compare_the_first_two_versions(page)
    page.go_back()
    page.wait_for_url(served.at(f"/briefs/{BRIEF}"))

    page.locator("#v3 a.version-link").click()
    page.wait_for_url(served.at(f"/briefs/{BRIEF}/3"))
    badge(page, "draft")
    assert act(page, "approve", "Approve") == 303
    badge(page, "approved")
    assert page.url == served.at(f"/briefs/{BRIEF}/3")
    assert page.locator("#action-approve").count() == 0
    stored = store.get_strategy(BRIEF, 3)
    assert stored is not None and stored.status is Status.APPROVED

    page.locator("a[rel=next]").first.click()
    page.wait_for_url(served.at(f"/briefs/{BRIEF}/4"))
    assert act(page, "reject", "Reject", reason="off brand: too formal") == 303
    badge(page, "rejected")
    assert page.url == served.at(f"/briefs/{BRIEF}/4")
    stored = store.get_strategy(BRIEF, 4)
    assert stored is not None and stored.status is Status.REJECTED
    assert stored.status_reason == "off brand: too formal"

    open_the_brief(page, served)
    assert page.locator("#v3 .status").inner_text() == "approved"
    assert "off brand: too formal" in page.locator("#v4").inner_text()


def open_the_brief(page: Page, served: Served) -> None:
    """From any page: the Briefs link of the navigation, then the brief's link."""
    page.locator("a[href='/']", has_text="Briefs").first.click()
    page.wait_for_url(served.at("/"))
    page.locator("#briefs a.brief-link", has_text=BRIEF).click()
    page.wait_for_url(served.at(f"/briefs/{BRIEF}"))


def read_the_timeline_and_a_version(page: Page, served: Served) -> None:
    """On the timeline: open version 2, then step to version 1 and back with the links."""
    versions = page.locator("#timeline li.version")
    assert [versions.nth(i).get_attribute("id") for i in range(4)] == ["v4", "v3", "v2", "v1"]
    assert page.locator("#v1 .status").inner_text() == "approved"
    assert "too close to v1" in page.locator("#v2").inner_text()

    page.locator("#v2 a.version-link").click()
    page.wait_for_url(served.at(f"/briefs/{BRIEF}/2"))
    badge(page, "rejected")
    assert BRIEF in page.locator("h1").inner_text()
    titles = page.locator("#sections section.section h2").all_inner_texts()
    assert titles == ["Audience", "Channels", "Budget"]
    assert "TikTok" in page.locator("#sections").inner_text()
    assert "temperature" in page.locator("#metadata").inner_text()
    assert page.locator("#seal").inner_text().startswith("sha256:")
    assert page.locator("#location").inner_text()

    page.locator("a[rel=prev]").first.click()
    page.wait_for_url(served.at(f"/briefs/{BRIEF}/1"))
    badge(page, "approved")
    page.locator("a[rel=next]").first.click()
    page.wait_for_url(served.at(f"/briefs/{BRIEF}/2"))


def compare_the_first_two_versions(page: Page) -> None:
    """On the timeline: compare versions 1 and 2 with the form, and see what changed."""
    page.locator("#compare select[name=from]").select_option("1")
    page.locator("#compare select[name=to]").select_option("2")
    page.locator("#compare button[type=submit]", has_text="Compare").click()
    page.wait_for_url(re.compile(re.escape(f"/briefs/{BRIEF}/diff?from=1&to=2") + "$"))
    table = page.locator("table#diff.side-by-side")
    assert "Podcasts" in " ".join(table.locator("del").all_inner_texts())
    assert "TikTok" in " ".join(table.locator("ins").all_inner_texts())


def test_a_reason_is_required_before_a_rejection_is_sent(
    page: Page, tmp_path: Path, data_dir: Path
) -> None:
    with serving(str(data_dir), tmp_path / "serve.log", allow_write=True) as served:
        page.goto(served.at(f"/briefs/{BRIEF}/4"))
        posts: list[Request] = []

        def record(request: Request) -> None:
            if request.method == "POST":
                posts.append(request)

        page.on("request", record)
        page.locator("#action-reject").get_by_role("button", name="Reject").click()
        page.wait_for_timeout(300)
        assert posts == []
        badge(page, "draft")


def test_withdrawing_and_a_new_draft_are_one_click_each(
    page: Page, tmp_path: Path, data_dir: Path
) -> None:
    with serving(str(data_dir), tmp_path / "serve.log", allow_write=True) as served:
        page.goto(served.at(f"/briefs/{BRIEF}/1"))
        assert act(page, "new-draft", "New draft from this version") == 303
        page.wait_for_url(served.at(f"/briefs/{BRIEF}/5"))
        badge(page, "draft")
        assert "Podcasts" in page.locator("#sections").inner_text()

        page.goto(served.at(f"/briefs/{BRIEF}/1"))
        assert act(page, "withdraw", "Withdraw", reason="superseded by the autumn plan") == 303
        badge(page, "withdrawn")
        assert page.url == served.at(f"/briefs/{BRIEF}/1")
    stored = FileStore(data_dir).get_strategy(BRIEF, 1)
    assert stored is not None and stored.status_reason == "superseded by the autumn plan"


def test_an_action_on_a_stale_page_is_refused_with_a_409_page(
    page: Page, tmp_path: Path, data_dir: Path
) -> None:
    with serving(str(data_dir), tmp_path / "serve.log", allow_write=True) as served:
        page.goto(served.at(f"/briefs/{BRIEF}/3"))
        other = page.context.new_page()
        other.goto(served.at(f"/briefs/{BRIEF}/3"))
        assert act(other, "approve", "Approve") == 303
        badge(other, "approved")

        assert act(page, "reject", "Reject", reason="too late") == 409
        assert page.locator("#error").inner_text()
    stored = FileStore(data_dir).get_strategy(BRIEF, 3)
    assert stored is not None and stored.status is Status.APPROVED


# -- read-only pages -----------------------------------------------------------------

PAGES = {
    "front": "/",
    "timeline": f"/briefs/{BRIEF}",
    "version": f"/briefs/{BRIEF}/2",
    "diff": f"/briefs/{BRIEF}/diff?from=1&to=2",
    "check": "/check",
}


@pytest.mark.parametrize("name", PAGES)
def test_every_page_is_drawn_with_a_title_and_the_navigation(
    page: Page, read_only: Served, name: str
) -> None:
    response = page.goto(read_only.at(PAGES[name]))
    assert response is not None and response.status == 200
    assert page.title().strip()
    assert page.locator("main").count() == 1
    assert page.locator("a[href='/']", has_text="Briefs").count() >= 1
    assert page.locator("a[href='/check']", has_text="Check").count() >= 1

    image = png.decode(page.screenshot(full_page=False))
    assert (image.width, image.height) == (1000, 700)
    assert len(image.colours()) > 16, f"the {name} page is drawn in too few colours"
    assert image.foreground_share() > 0.02, f"the {name} page is nearly blank"


def test_a_read_only_page_offers_no_actions(page: Page, read_only: Served) -> None:
    page.goto(read_only.at(f"/briefs/{BRIEF}/3"))
    badge(page, "draft")
    assert page.locator("main form[method=post], main form[method=POST]").count() == 0
    for action in ("approve", "reject", "withdraw", "new-draft"):
        assert page.locator(f"#action-{action}").count() == 0


def test_the_check_page_lists_findings(page: Page, read_only: Served) -> None:
    page.goto(read_only.at("/check"))
    findings = page.locator("#findings li.finding")
    assert "README.md" in " ".join(findings.all_inner_texts())


def test_the_front_page_turns_pages_of_a_hundred_briefs(page: Page, tmp_path: Path) -> None:
    store = FileStore(tmp_path / "data", durable=False)
    for n in range(105):
        store.create_next(f"brief-{n:03d}")
    with serving(str(tmp_path / "data"), tmp_path / "serve.log") as served:
        page.goto(served.at("/"))
        assert page.locator("#briefs tbody tr").count() == 100
        assert page.locator("a[rel=prev]").count() == 0
        page.locator("a[rel=next]").first.click()
        page.locator("#briefs a.brief-link", has_text="brief-104").wait_for()
        assert page.locator("#briefs tbody tr").count() == 5
        assert page.locator("a[rel=next]").count() == 0
        page.locator("a[rel=prev]").first.click()
        page.locator("#briefs a.brief-link", has_text="brief-000").wait_for()


# -- hostile documents ---------------------------------------------------------------

#: Records every CSP violation of a page, before any of the page's own script.
_RECORD_VIOLATIONS = """
window.violations = [];
document.addEventListener("securitypolicyviolation", (e) => {
    window.violations.push(e.effectiveDirective || e.violatedDirective);
});
"""

#: Adds an inline script to the page, as an injection that escaped the escaping would.
_INJECT_INLINE = """() => {
    const script = document.createElement("script");
    script.textContent = "window.inlineRan = 1";
    document.body.append(script);
}"""


@pytest.mark.parametrize(
    "path", ["/", "/briefs/hostile", "/briefs/hostile/1", "/briefs/hostile/diff?from=1&to=2"]
)
def test_hostile_document_text_runs_no_script(page: Page, read_only: Served, path: str) -> None:
    page.goto(read_only.at(path))
    page.wait_for_load_state("load")
    assert page.evaluate("window.pwned") is None
    for href in page.locator("main a").evaluate_all("links => links.map(a => a.href)"):
        assert href.split(":", 1)[0] in ("http", "https", "mailto"), href


def test_hostile_markdown_is_shown_as_text_and_its_link_is_inert(
    page: Page, read_only: Served
) -> None:
    page.goto(read_only.at("/briefs/hostile/1"))
    sections = page.locator("#sections")
    text = sections.inner_text()
    assert "<script>window.pwned=1</script>" in text
    assert '<img src=x onerror="window.pwned=1">' in text
    assert page.locator("#sections h2").inner_text() == "<script>window.pwned=1</script>"
    assert "onerror" in page.locator("#metadata").inner_text()
    assert sections.locator("img, script, iframe").count() == 0

    link = sections.locator("a", has_text=re.compile(r"^x$"))
    target = link if link.count() else sections.locator("p", has_text="javascript:").first
    target.click()
    page.wait_for_timeout(200)
    assert page.url == read_only.at("/briefs/hostile/1")
    assert page.evaluate("window.pwned") is None
    safe = sections.locator("a", has_text="safe link")
    assert safe.get_attribute("href") == "https://example.com/plan"


def test_the_content_security_policy_blocks_inline_script(page: Page, read_only: Served) -> None:
    page.add_init_script(_RECORD_VIOLATIONS)
    response = page.goto(read_only.at("/briefs/hostile/1"))
    assert response is not None
    policy = response.headers.get("content-security-policy") or " ".join(
        page.locator("meta[http-equiv=Content-Security-Policy i]").evaluate_all(
            "metas => metas.map(m => m.content)"
        )
    )
    assert "script-src" in policy or "default-src" in policy, policy

    page.evaluate(_INJECT_INLINE)
    page.wait_for_function("window.violations.length > 0", timeout=3000)
    assert page.evaluate("window.inlineRan") is None
    assert any(d.startswith("script-src") for d in page.evaluate("window.violations"))
