"""A team's journey in Debian's Chromium (Playwright, headless), contract §9-§11.

An owner invites a colleague (the link read from the email outbox), the colleague accepts and
creates a key restricted to `iris` from one address, both keys spend the organization's one
quota, a house-price call and a call from another address are refused without using quota,
the owner removes the colleague, whose session then gets 404 for the organization while its
keys keep working, and the audit page shows each step. The live server runs in this process,
so Django's test email outbox (`mail.outbox`) holds the invitation. The address: the live
server sees 127.0.0.1, made a trusted proxy here, so `X-Forwarded-For` says who is calling.
"""

from __future__ import annotations

import re

import pytest
import requests
from django.core import mail
from django.core.cache import cache

from keys import limits
from keys.orgs import create_organization
from keys.services import signup_subscriber
from tests.browser import keep_screenshot, launched_chromium, needs_chromium
from tests.factories import seeded_plan

PASSWORD = "Team-journey-83-harbours"
OFFICE, ELSEWHERE = "203.0.113.5", "198.51.100.7"
IRIS = [5.1, 3.5, 1.4, 0.2]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
    needs_chromium,
]


def call(base: str, key: str, model: str = "iris", *, ip: str = OFFICE) -> requests.Response:
    row = IRIS if model == "iris" else ["D", "N", "F"]
    return requests.post(
        f"{base}/api/v1/models/{model}/predict",
        json={"instances": [row]},
        headers={"X-API-Key": key, "X-Forwarded-For": ip},
        timeout=30,
    )


class Browser:
    """One person's page; screenshots numbered across both people."""

    step = 0

    def __init__(self, context, shots) -> None:
        self.page = context.new_page()
        self.page.set_default_timeout(20_000)
        self.shots = shots
        self.errors: list[str] = []
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))

    def shot(self, name: str) -> None:
        Browser.step += 1
        path = self.shots / f"team-{Browser.step:02d}-{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        keep_screenshot(path)

    def log_in(self, username: str) -> None:
        self.page.goto("/portal/login/")
        self.page.get_by_label("Username").fill(username)
        self.page.get_by_label("Password").fill(PASSWORD)
        self.page.get_by_role("button", name="Log in").click()
        self.page.wait_for_url("**/portal/dashboard/")

    def new_key(self) -> str:
        self.page.get_by_role("button", name="Create key").click()
        key = self.page.locator("[data-testid=new-key]").inner_text().strip()
        assert key.startswith("mlk_")
        return key


@pytest.fixture
def team(live_server, live_demo_models, settings):
    cache.clear()
    for name in ("free", "pro", "enterprise"):
        seeded_plan(name)
    settings.MLAPI_TRUSTED_PROXIES = ["127.0.0.1/32"]
    olga = signup_subscriber(username="olga", email="olga@example.com", password=PASSWORD).user
    signup_subscriber(username="colin", email="colin@example.com", password=PASSWORD)
    org = create_organization(name="Acme Analytics", slug="acme", owner=olga)
    return org


def test_a_team_invites_restricts_spends_one_quota_removes_and_audits(
    team, live_server, tmp_path, monkeypatch
):
    base = live_server.url
    with launched_chromium(monkeypatch) as chromium:
        contexts = [chromium.new_context(base_url=base) for _ in range(2)]
        owner, colleague = (Browser(c, tmp_path) for c in contexts)

        # 1. The owner switches to the team and creates the team's key.
        owner.log_in("olga")
        owner.page.get_by_role("link", name="Organizations").click()
        owner.page.get_by_role("button", name="Switch to acme").click()
        owner.page.get_by_role("link", name="API keys").click()
        owner.page.get_by_label("Name").fill("production")
        owner_key = owner.new_key()
        owner.shot("owner-key")

        # 2. ... and invites a colleague; the email holds a one-time link.
        owner.page.goto("/portal/orgs/acme/members/")
        owner.page.get_by_label("Email").fill("colin@example.com")
        owner.page.get_by_label("Role").select_option("developer")
        owner.page.get_by_role("button", name="Send invitation").click()
        assert "Invitation sent" in owner.page.content()
        owner.shot("invited")
        assert mail.outbox and mail.outbox[-1].to == ["colin@example.com"]
        link = re.search(r"https?://\S+accept\?token=\S+", mail.outbox[-1].body).group(0)

        # 3. The colleague accepts and lands in the team.
        colleague.log_in("colin")
        colleague.page.goto(link)
        colleague.shot("accept")
        colleague.page.get_by_role("button", name="Accept invitation").click()
        colleague.page.wait_for_url("**/portal/dashboard/")
        assert "You joined Acme Analytics as developer" in colleague.page.content()

        # 4. ... and creates a key for iris, from the office only.
        colleague.page.get_by_role("link", name="API keys").click()
        colleague.page.get_by_label("Name").fill("colin laptop")
        colleague.page.get_by_role("checkbox", name="iris").check()
        colleague.page.get_by_label("Allowed IP addresses").fill(OFFICE)
        colleague_key = colleague.new_key()
        assert f"{OFFICE}/32" in colleague.page.content()
        colleague.shot("restricted-key")

        # 5. Both keys spend the organization's one quota; refusals use none.
        assert call(base, owner_key).status_code == 200
        assert call(base, colleague_key).status_code == 200
        refused_model = call(base, colleague_key, "house-price")
        refused_ip = call(base, colleague_key, ip=ELSEWHERE)
        for refused in (refused_model, refused_ip):
            assert refused.status_code == 403
            assert refused.json()["code"] == "permission_denied"
        assert call(base, owner_key, "house-price").status_code == 200
        assert limits.quota_status(subscription=team.subscription).used == 3

        # 6. The owner removes the colleague: the session loses the team at once ...
        owner.page.goto("/portal/orgs/acme/members/")
        owner.page.get_by_role("button", name="Remove colin").click()
        assert "colin was removed" in owner.page.content()
        owner.shot("removed")
        gone = colleague.page.goto("/portal/orgs/acme/members/")
        assert gone.status == 404
        colleague.page.goto("/portal/keys/")
        assert "colin laptop" not in colleague.page.content()  # back in the personal org
        colleague.shot("after-removal")
        # ... while the organization's keys, the colleague's included, keep working.
        assert call(base, colleague_key).status_code == 200
        assert call(base, owner_key).status_code == 200

        # 7. The audit page shows each step.
        owner.page.goto("/portal/orgs/acme/audit/")
        owner.shot("audit")
        shown = owner.page.locator("tr[data-action]").evaluate_all(
            "rows => rows.map(r => r.dataset.action + ' ' + r.cells[1].innerText)"
        )
        assert shown[:4] == [
            "member.removed olga",
            "key.created colin",
            "member.joined colin",
            "invitation.created olga",
        ]
        assert "key.created olga" in shown and "org.created olga" in shown
        assert not owner.errors and not colleague.errors
        for context in contexts:
            context.close()
