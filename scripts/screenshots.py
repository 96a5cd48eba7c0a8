"""Regenerate the review page's screenshots in docs/ from a sample data directory.

    python scripts/screenshots.py [OUT_DIR]     # default: docs/

It fills a data directory in a temporary directory with one brief's
versions, runs ``strategystore serve --port 0`` over it, and saves with
headless Chromium (Debian's ``/usr/bin/chromium``, driven by Playwright):

    review-timeline.png   the brief's timeline
    review-version.png    a version, its sections rendered
    review-diff.png       two versions side by side
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from playwright.sync_api import ViewportSize, sync_playwright

from strategystore import FileStore, Section

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT: ViewportSize = {"width": 1000, "height": 700}

BRIEF = "northwind-coffee-spring"

#: Pages to capture: file name and path on the server.
SHOTS = {
    "review-timeline.png": f"/briefs/{BRIEF}",
    "review-version.png": f"/briefs/{BRIEF}/3",
    "review-diff.png": f"/briefs/{BRIEF}/diff?from=1&to=3",
}

#: A screenshot larger than this is a sign the page drew something unexpected.
MAX_BYTES = 150_000

T0 = datetime(2026, 2, 9, 9, 15, tzinfo=UTC)


def strategy(channels: str, budget: str, kpis: str) -> list[Section]:
    """A spring-launch strategy whose channels, budget and KPIs vary by version."""
    return [
        Section(
            key="objective",
            title="Objective",
            body="Launch the **Spring Blend** in 40 stores and online, and make it the "
            "first-choice seasonal coffee for commuters by the end of May.",
        ),
        Section(
            key="audience",
            title="Audience",
            body="Commuters aged 25-40 in the three launch cities who buy coffee on the way "
            "to work at least three times a week, and already follow a café on social media.",
        ),
        Section(key="channels", title="Channels", body=channels),
        Section(key="budget", title="Budget", body=budget),
        Section(key="kpis", title="KPIs", body=kpis),
    ]


def fill(store: FileStore) -> None:
    """The sample brief: 1 approved, 2 rejected with a reason, 3 a draft; and two more briefs."""
    store.create_next(
        BRIEF,
        strategy(
            "- Instagram stories with the roasters\n- Sampling at three train stations\n"
            "- In-store posters",
            "EUR 60,000 over eight weeks, half of it on sampling.",
            "- 25,000 samples handed out\n- 8% redemption of the launch voucher",
        ),
        {"generator": "gpt", "model_temperature": 0.4, "owner": "Dana (brand)"},
        now=T0,
    )
    store.approve(BRIEF, 1, now=T0 + timedelta(hours=3))
    store.create_next(
        BRIEF,
        strategy(
            "- TikTok creators\n- Sampling at three train stations\n- Podcast sponsorship",
            "EUR 95,000 over eight weeks.",
            "- 2 million views\n- 8% redemption of the launch voucher",
        ),
        {"generator": "gpt", "model_temperature": 0.8, "owner": "Dana (brand)"},
        now=T0 + timedelta(days=2),
    )
    store.reject(
        BRIEF,
        2,
        reason="Over budget; podcasts do not reach commuters in the launch cities.",
        now=T0 + timedelta(days=2, hours=5),
    )
    store.create_next(
        BRIEF,
        strategy(
            "- Instagram stories with the roasters\n- Sampling at five train stations\n"
            "- A loyalty-app offer for the first cup",
            "EUR 65,000 over eight weeks, half of it on sampling.",
            "- 40,000 samples handed out\n- 10% redemption of the launch voucher\n"
            "- 5,000 new loyalty-app members",
        ),
        {"generator": "gpt", "model_temperature": 0.5, "owner": "Dana (brand)"},
        now=T0 + timedelta(days=4),
    )
    store.create_next(
        "contoso-bikes-autumn",
        [Section(key="goal", title="Goal", body="Sell out the autumn e-bike range.")],
        now=T0 + timedelta(days=1),
    )
    store.approve("contoso-bikes-autumn", 1, now=T0 + timedelta(days=1, hours=2))
    store.create_next(
        "fabrikam-rebrand",
        [Section(key="goal", title="Goal", body="Make the brand feel younger.")],
        now=T0 + timedelta(days=3),
    )


def serve(data_dir: Path, log: Path) -> tuple[subprocess.Popen[str], str]:
    """Start ``strategystore serve`` read-only over ``data_dir``, logging to ``log``.

    Returns:
        The server's process and its address.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRATEGYSTORE_")}
    env["PYTHONUNBUFFERED"] = "1"
    command = [sys.executable, "-m", "strategystore", "serve", "--port", "0"]
    with log.open("w", encoding="utf-8") as errors:
        process = subprocess.Popen(
            [*command, "--store", str(data_dir)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
            env=env,
        )
    assert process.stdout is not None
    line = process.stdout.readline()
    found = re.search(r"(http://[^\s/]+)/", line)
    if found is None:
        process.kill()
        process.wait()
        process.stdout.close()
        raise SystemExit(f"strategystore serve printed {line!r}:\n{log.read_text()}")
    return process, found.group(1)


def main(argv: list[str]) -> int:
    out = Path(argv[0]) if argv else Path(__file__).resolve().parent.parent / "docs"
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="strategystore-shots-") as temp:
        data_dir = Path(temp) / "strategy-data"
        fill(FileStore(data_dir, durable=False))
        process, url = serve(data_dir, Path(temp) / "serve.log")
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                page = browser.new_page(viewport=VIEWPORT)
                for name, path in SHOTS.items():
                    page.goto(url + path)
                    shot = page.screenshot(type="png", scale="css", animations="disabled")
                    if len(shot) > MAX_BYTES:
                        raise SystemExit(f"{name} is {len(shot):,} bytes, over {MAX_BYTES:,}")
                    (out / name).write_bytes(shot)
                    print(f"{out / name}  {len(shot):,} bytes")
                browser.close()
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=10)
            assert process.stdout is not None
            process.stdout.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
