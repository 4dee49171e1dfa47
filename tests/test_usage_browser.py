"""The admin usage report in Debian's Chromium: the vendored chart draws under the CSP."""

from __future__ import annotations

from datetime import date

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from tests.browser import launched_chromium, needs_chromium
from tests.factories import usage_event as event
from tests.support.usage import make_subscription
from usage.writer import write_events

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
    needs_chromium,
]


def test_admin_report_chart_draws_from_the_vendored_library_without_csp_errors(
    live_server, tmp_path, monkeypatch
):
    sub, _ = make_subscription()
    write_events(
        [event(sub, day=date(2026, 1, 2), n=2)] * 5 + [event(sub, day=date(2026, 1, 3), status=429)]
    )
    staff = get_user_model().objects.create_user(
        username="ops-browser", email="ops-b@example.com", password="x", is_staff=True,
        is_superuser=True,
    )  # fmt: skip
    client = Client()
    client.force_login(staff)
    session = client.cookies["sessionid"].value
    problems: list[str] = []
    with launched_chromium(monkeypatch) as browser:
        context = browser.new_context()
        context.add_cookies([{"name": "sessionid", "value": session, "url": live_server.url}])
        page = context.new_page()
        page.on(
            "response",
            lambda r: (
                r.status >= 400
                and not r.url.endswith("/favicon.ico")  # the browser asks; no page links it
                and problems.append(f"{r.status} {r.url}")
            ),
        )
        page.on(
            "console",
            lambda m: (
                m.type == "error"
                and "Failed to load resource" not in m.text  # reported by "response" above
                and problems.append(m.text)
            ),
        )
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.on(
            "request",
            lambda r: r.url.startswith(live_server.url) or problems.append(f"external {r.url}"),
        )
        page.goto(f"{live_server.url}/admin/reports/usage/?start=2026-01-01&end=2026-01-04")
        page.wait_for_function("document.getElementById('usage-chart').chart !== undefined")
        datasets = page.evaluate(
            "document.getElementById('usage-chart').chart.data.datasets.map(d => [d.label, d.data])"
        )
        page.screenshot(path=str(tmp_path / "usage-report.png"), full_page=True)
        page.screenshot(path="/tmp/usage-report.png", full_page=True)
    assert datasets == [
        ["Requests", [0, 5, 1, 0]],
        ["Errors", [0, 0, 0, 0]],
        ["Throttled (429)", [0, 0, 1, 0]],
    ]
    assert problems == []
