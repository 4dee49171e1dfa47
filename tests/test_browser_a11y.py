"""Every portal page in Chromium: labels, headings, contrast, keyboard focus, error states.

Automated checks of what WCAG 2.1 AA asks of these pages: one h1 and no skipped heading
levels, a name for every control and link, unique ids, text contrast of at least 4.5:1
(3:1 for large text), a visible focus ring, a skip link first in the tab order, and form
errors tied to their inputs. Screenshots go to /tmp/portal-shots/ like the journey's.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.browser import keep_screenshot, launched_chromium, needs_chromium
from tests.factories import TEST_PASSWORD, ApiKeyFactory, seeded_plan

ANONYMOUS_PAGES = ["/portal/", "/portal/docs/", "/portal/login/", "/portal/signup/",
                   "/portal/password-reset/"]  # fmt: skip
SUBSCRIBER_PAGES = ["/portal/dashboard/", "/portal/keys/", "/portal/usage/", "/portal/jobs/",
                    "/portal/plan/", "/portal/docs/"]  # fmt: skip

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    needs_chromium,
]

# Returns a list of problems found on the current page (empty when it passes).
AUDIT = r"""() => {
  const problems = [];
  const visible = e => !!(e.offsetWidth || e.offsetHeight || e.getClientRects().length);
  if (document.documentElement.lang !== "en") problems.push("html lang is not en");
  const h1s = document.querySelectorAll("h1");
  if (h1s.length !== 1) problems.push(`${h1s.length} h1 elements`);
  let last = 0;
  for (const h of document.querySelectorAll("h1, h2, h3, h4, h5, h6")) {
    const level = Number(h.tagName[1]);
    if (level > last + 1)
      problems.push(`heading ${h.tagName} "${h.textContent.trim()}" skips a level`);
    last = level;
  }
  for (const c of document.querySelectorAll("input:not([type=hidden]), select, textarea")) {
    if (!c.labels.length && !c.getAttribute("aria-label") && !c.getAttribute("aria-labelledby"))
      problems.push(`control ${c.name || c.id} has no label`);
    for (const id of (c.getAttribute("aria-describedby") || "").split(/\s+/).filter(Boolean))
      if (!document.getElementById(id)) problems.push(`${c.name}: aria-describedby ${id} missing`);
  }
  for (const e of document.querySelectorAll("a, button")) {
    if (visible(e) && !e.textContent.trim() && !e.getAttribute("aria-label"))
      problems.push(`${e.tagName} without a name: ${e.outerHTML.slice(0, 80)}`);
  }
  for (const c of document.querySelectorAll("canvas"))
    if (c.getAttribute("role") !== "img" || !c.getAttribute("aria-label"))
      problems.push("canvas without role=img and aria-label");
  const ids = [...document.querySelectorAll("[id]")].map(e => e.id);
  for (const id of new Set(ids.filter((id, i) => ids.indexOf(id) !== i)))
    problems.push(`duplicate id ${id}`);
  const rgb = s => (s.match(/[\d.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => {
    const f = v => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  const background = e => {
    for (; e; e = e.parentElement) {
      const c = rgb(getComputedStyle(e).backgroundColor);
      if (c.length === 3 || (c.length === 4 && c[3] > 0.5)) return c.slice(0, 3);
    }
    return [255, 255, 255];
  };
  for (const e of document.querySelectorAll("body *")) {
    const own = [...e.childNodes].some(n => n.nodeType === 3 && n.textContent.trim());
    if (!own || !visible(e) || e.closest(".visually-hidden, .skip-link")) continue;
    const style = getComputedStyle(e);
    const fg = lum(rgb(style.color)), bg = lum(background(e));
    const ratio = (Math.max(fg, bg) + 0.05) / (Math.min(fg, bg) + 0.05);
    const size = parseFloat(style.fontSize), bold = Number(style.fontWeight) >= 700;
    const needed = size >= 24 || (bold && size >= 18.66) ? 3 : 4.5;
    if (ratio < needed)
      problems.push(`contrast ${ratio.toFixed(2)} < ${needed}: ${e.textContent.trim()}`);
  }
  return problems;
}"""


@pytest.fixture
def chromium(live_server, monkeypatch):
    """A Chromium page that refuses every request not to the live server."""
    with launched_chromium(monkeypatch) as browser:
        page = browser.new_page(base_url=live_server.url)
        page.errors, page.outside = [], []
        page.on("console", lambda m: m.type == "error" and page.errors.append(m.text))
        page.on("pageerror", lambda exc: page.errors.append(str(exc)))

        def only_local(route):
            if route.request.url.startswith(live_server.url):
                route.continue_()
            else:
                page.outside.append(route.request.url)
                route.abort()

        page.route("**/*", only_local)
        for name in ("free", "pro", "enterprise"):  # an earlier transactional test flushed them
            seeded_plan(name)
        yield page


def contrast_on_white(css_colour: str) -> float:
    """Contrast ratio of an `rgb(r, g, b)` colour against white."""
    r, g, b = (int(v) / 255 for v in css_colour[css_colour.index("(") + 1 : -1].split(",")[:3])
    channel = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in (r, g, b)]
    luminance = 0.2126 * channel[0] + 0.7152 * channel[1] + 0.0722 * channel[2]
    return 1.05 / (luminance + 0.05)


def audit(page, url: str) -> list[str]:
    page.goto(url)
    return [f"{url}: {problem}" for problem in page.evaluate(AUDIT)]


def shot(page, directory: Path, name: str) -> None:
    """Screenshot into the test's tmp dir, copied to /tmp/portal-shots/ for the integrator."""
    path = directory / f"a11y-{name}.png"
    page.screenshot(path=str(path), full_page=True)
    keep_screenshot(path)


def test_every_page_passes_the_accessibility_audit(chromium, live_demo_models, make_subscriber):
    problems = []
    for url in ANONYMOUS_PAGES:
        problems += audit(chromium, url)
    subscription = make_subscriber(plan="free")
    key = ApiKeyFactory(subscription=subscription)
    chromium.goto("/portal/login/")
    chromium.get_by_label("Username").fill(subscription.user.username)
    chromium.get_by_label("Password").fill(TEST_PASSWORD)
    chromium.get_by_role("button", name="Log in").click()
    chromium.wait_for_url("**/portal/dashboard/")
    for url in [*SUBSCRIBER_PAGES, f"/portal/keys/{key.pk}/revoke/"]:
        problems += audit(chromium, url)
    assert problems == []
    assert chromium.errors == [] and chromium.outside == []


def test_the_audit_catches_what_it_looks_for(chromium, db):
    chromium.goto("/portal/login/")
    chromium.evaluate(
        """() => {
        const main = document.querySelector("main");
        main.insertAdjacentHTML("beforeend",
          '<p style="color:#aaa">pale</p><input name="nolabel"><h4>deep</h4><a href="/"></a>');
        }"""
    )
    problems = " | ".join(chromium.evaluate(AUDIT))
    for expected in ("contrast 2.32 < 4.5: pale", "control nolabel has no label",
                     'heading H4 "deep" skips a level'):  # fmt: skip
        assert expected in problems


def test_the_skip_link_comes_first_and_focus_is_visible(chromium, tmp_path):
    chromium.goto("/portal/login/")
    chromium.keyboard.press("Tab")
    assert chromium.evaluate("document.activeElement.className") == "skip-link"
    chromium.keyboard.press("Enter")
    assert chromium.evaluate("location.hash") == "#main"
    chromium.get_by_label("Username").focus()
    outline = chromium.evaluate(
        "(() => { const s = getComputedStyle(document.activeElement);"
        " return [s.outlineStyle, parseFloat(s.outlineWidth), s.outlineColor]; })()"
    )
    assert outline[0] != "none" and outline[1] >= 2
    assert contrast_on_white(outline[2]) >= 3  # WCAG 1.4.11 non-text contrast
    shot(chromium, tmp_path, "focus-ring")


def test_form_errors_are_announced_and_tied_to_their_inputs(chromium, tmp_path):
    chromium.goto("/portal/signup/")
    chromium.get_by_label("Email").fill("not-an-email")
    chromium.get_by_label("Password", exact=True).fill("short")
    chromium.get_by_label("Password again").fill("different")
    chromium.get_by_role("button", name="Create account").click()
    chromium.wait_for_selector("[role=alert]")
    invalid = chromium.evaluate(
        "[...document.querySelectorAll('[aria-invalid=true]')].map(e => e.name)"
    )
    assert set(invalid) == {"username", "email", "password2"}
    described = chromium.evaluate(
        "document.getElementById(document.querySelector('#id_email')"
        ".getAttribute('aria-describedby').split(' ').pop()).textContent"
    )
    assert "valid email" in described
    assert chromium.evaluate(AUDIT) == []
    shot(chromium, tmp_path, "signup-errors")
