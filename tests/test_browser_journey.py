"""A new subscriber's journey through the portal in Debian's Chromium (Playwright, headless).

Sign up, see the dashboard, create a key and read it once, call the API with it, see the usage
numbers and chart change, run the docs' examples, upload a batch job and watch it succeed
without a reload, download its results, revoke the key. Nothing may leave the live server and
the console must stay free of errors. Screenshots of every step go to the test's tmp dir and
to /tmp/portal-shots/.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from django.core.cache import cache

from tests.browser import keep_screenshot, launched_chromium, needs_chromium
from tests.factories import seeded_plan
from tests.support import jobs
from tests.support.jobs import IRIS_ROWS, iris_csv

# The jobs tests' real Celery worker (Celery's test worker in a thread, on the configured broker).
celery_worker = jobs.celery_worker
celery_worker_module = getattr(jobs, "celery_worker_module", None)

PASSWORD = "Journey-through-47-meadows"
# Elements sticking out of the viewport on the right, to explain a sideways scroll.
WIDEST = """[...document.querySelectorAll('body *')]
  .filter(e => e.getBoundingClientRect().right > window.innerWidth + 1)
  .filter(e => !e.closest('.table-wrap, pre'))
  .slice(0, 5).map(e => e.tagName + '.' + e.className + ' ' + e.getBoundingClientRect().right)"""

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
    needs_chromium,
]


class Journey:
    """The page plus the evidence the test asserts on: blocked requests, console errors."""

    def __init__(self, page, base_url: str, shots: Path) -> None:
        self.page, self.base, self.shots = page, base_url, shots
        self.blocked: list[str] = []
        self.console_errors: list[str] = []
        self.step = 0
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.console_errors.append(f"pageerror: {exc}"))
        page.route("**/*", self._only_the_live_server)

    def _console(self, message) -> None:
        if message.type == "error":
            self.console_errors.append(message.text)

    def _only_the_live_server(self, route) -> None:
        url = route.request.url
        if url.startswith(self.base + "/") or url == self.base:
            route.continue_()
        else:
            self.blocked.append(url)
            route.abort()

    def shot(self, name: str) -> None:
        self.step += 1
        path = self.shots / f"{self.step:02d}-{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        keep_screenshot(path)

    def text(self, selector: str) -> str:
        return self.page.locator(selector).inner_text().strip()


def predict(base: str, key: str, instances: list) -> requests.Response:
    return requests.post(
        f"{base}/api/v1/models/iris/predict",
        json={"instances": instances},
        headers={"X-API-Key": key},
        timeout=30,
    )


def run_snippet(code: str, key: str, *, in_bash: bool = False) -> str:
    """Run a docs example as a user would paste it (Python, or bash for curl), MLAPI_KEY set."""
    env = dict(os.environ, MLAPI_KEY=key)
    command = ["bash", "-c", code] if in_bash else [sys.executable, "-c", code]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture
def browser_page(live_server, tmp_path, monkeypatch):
    """A fresh Chromium page on the live server, closed at the end."""
    with launched_chromium(monkeypatch) as browser:
        context = browser.new_context(
            base_url=live_server.url, accept_downloads=True, viewport={"width": 1280, "height": 900}
        )
        context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
        page = context.new_page()
        page.set_default_timeout(20_000)
        try:
            yield Journey(page, live_server.url, tmp_path)
        finally:
            context.close()


def test_signup_to_first_prediction_and_a_batch_job_in_the_browser(
    browser_page, live_server, celery_worker, tmp_path
):
    from usage.recording import flush_usage

    cache.clear()  # rate-limit counters from earlier tests
    for name in ("free", "pro", "enterprise"):  # an earlier transactional test flushed them
        seeded_plan(name)
    j, page, base = browser_page, browser_page.page, live_server.url

    # 1. Landing, keyboard first: Tab reaches the skip link.
    page.goto("/")
    assert page.url == f"{base}/portal/"
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className") == "skip-link"
    j.shot("landing")

    # 2. Sign up and land on the dashboard.
    page.get_by_role("link", name="Sign up free").click()
    page.get_by_label("Username").fill("journey")
    page.get_by_label("Email").fill("journey@example.com")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Password again").fill(PASSWORD)
    j.shot("signup-form")
    page.get_by_role("button", name="Create account").click()
    page.wait_for_url("**/portal/dashboard/")
    assert j.text("[data-testid=quota-used]").startswith("0")
    assert j.text("[data-testid=total-predictions]") == "0"
    j.shot("dashboard-new")

    # 3. Create a key: shown once, copyable.
    page.get_by_role("link", name="Create your first key").click()
    page.get_by_label("Name").fill("journey laptop")
    page.get_by_role("button", name="Create key").click()
    key = j.text("[data-testid=new-key]")
    assert key.startswith("mlk_")
    page.get_by_role("button", name="Copy").click()
    page.get_by_role("button", name="Copied").wait_for()
    assert page.evaluate("navigator.clipboard.readText()") == key
    j.shot("key-created")
    page.get_by_role("link", name="I have copied it").click()
    assert key not in page.content() and key.split(".")[0] in page.content()
    j.shot("keys-list")

    # 4. Call the API with it (from the test, as a script would), then see the numbers change.
    good = predict(base, key, [r[0] for r in IRIS_ROWS])
    assert good.status_code == 200 and good.json()["predictions"] == [r[1] for r in IRIS_ROWS]
    bad = predict(base, key, [{"sepal_length": "tall"}])
    assert bad.status_code == 400
    flush_usage()
    page.get_by_role("link", name="Dashboard").click()
    assert j.text("[data-testid=total-predictions]") == "3"
    assert j.text("[data-testid=total-requests]") == "2"
    assert j.text("[data-testid=total-errors]") == "1"
    assert j.text("[data-testid=quota-used]").startswith("3")
    assert "validation_error" in j.text("main")
    page.wait_for_selector("canvas[data-rendered=true]")
    j.shot("dashboard-after-calls")

    # 5. Usage page: table, chart and the CSV download.
    page.get_by_role("link", name="Usage", exact=True).click()
    page.wait_for_selector("canvas[data-rendered=true]")
    assert j.text("[data-testid=total-predictions]") == "3"
    j.shot("usage")
    with page.expect_download() as download:
        page.get_by_role("link", name="Download CSV").click()
    rows = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))
    assert len(rows) == 30 and rows[-1]["predictions"] == "3"

    # 6. Docs: the Python and tritonclient examples work as pasted.
    page.get_by_role("link", name="Docs", exact=True).click()
    j.shot("docs")
    assert "'" in run_snippet(page.locator("#python-iris").inner_text(), key)
    assert "b'" in run_snippet(page.locator("#triton-iris").inner_text(), key)
    assert "[" in run_snippet(page.locator("#python-house-price").inner_text(), key)
    if shutil.which("curl"):
        reply = run_snippet(page.locator("#curl-iris").inner_text(), key, in_bash=True)
        assert '"predictions"' in reply

    # 7. A batch job: upload, live progress without a reload, download the results.
    upload = tmp_path / "flowers.csv"
    upload.write_bytes(iris_csv(60))
    page.get_by_role("link", name="Batch jobs").click()
    page.get_by_label("Model").select_option("iris")
    page.get_by_label("Input file").set_input_files(str(upload))
    page.get_by_role("button", name="Upload and start").click()
    page.wait_for_selector("tr[data-job-url]")
    page.evaluate("window.__sameDocument = true")
    page.wait_for_selector("tr[data-status=succeeded]", timeout=90_000)
    assert page.evaluate("window.__sameDocument === true"), "the page reloaded"
    progress = page.locator("tr[data-status=succeeded] progress")
    assert progress.get_attribute("value") == progress.get_attribute("max") == "60"
    j.shot("job-succeeded")
    with page.expect_download() as download:
        page.locator("tr[data-status=succeeded] [data-role=download]").click()
    results = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))
    assert [r["prediction"] for r in results] == [IRIS_ROWS[i % 3][1] for i in range(60)]

    # 8. Revoke the key: the API refuses it from then on.
    page.get_by_role("link", name="API keys").click()
    page.get_by_role("link", name="Revoke").click()
    j.shot("revoke-confirm")
    page.get_by_role("button", name="Revoke key").click()
    page.wait_for_url("**/portal/keys/")
    assert "revoked" in j.text("table")
    j.shot("key-revoked")
    refused = predict(base, key, [IRIS_ROWS[0][0]])
    assert refused.status_code == 401 and refused.json()["code"] == "key_revoked"

    # 9. Phone width: nothing scrolls sideways except tables in their own box.
    page.set_viewport_size({"width": 390, "height": 844})
    page.get_by_role("link", name="Dashboard").click()
    page.wait_for_url("**/portal/dashboard/")
    page.wait_for_load_state("load")  # the stylesheet puts wide tables in their own scroller
    assert page.evaluate("document.documentElement.scrollWidth") <= 390, page.evaluate(WIDEST)
    j.shot("dashboard-phone")

    page.get_by_role("button", name="Log out").click()
    page.wait_for_url("**/portal/")
    flush_usage()
    assert j.blocked == [], f"requests left the server: {j.blocked}"
    assert j.console_errors == [], j.console_errors
