"""The built-in dashboard, rendered in headless Chromium against a live gateway."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("COPILOT_BRIDGE_CHROMIUM", "/usr/bin/chromium")
SCREENSHOT = Path(__file__).resolve().parent.parent / "docs" / "dashboard.png"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]

pytestmark = pytest.mark.skipif(
    not os.path.exists(CHROMIUM),
    reason=f"Chromium not found at {CHROMIUM}; .ci/run installs Debian's chromium package",
)


def test_dashboard_shows_ledger_numbers(gateway, local_upstream, tmp_path):
    from playwright.sync_api import sync_playwright

    served = gateway(local_upstream)
    client = served.client()
    for question in ("Explain what `any()` returns.", "Write a docstring for `def f(x): return x * 2`", "Explain what `any()` returns."):
        client.chat.completions.create(model="coder", messages=[{"role": "user", "content": question}])
    stats = served.get("/v1/stats?window=today").json()
    saved_tokens = f"{stats['tokens_saved']:,}"

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
            viewport={"width": 1200, "height": 820},
        )
        try:
            page = browser.new_page()
            page.goto(served.base_url + "/dashboard")
            page.wait_for_selector("body[data-loaded='true']", timeout=15000)
            tokens_text = page.inner_text("#tokens")
            usd_today = page.inner_text("#usd-today")
            errors = page.inner_text("#errors")
            routes_cache = page.inner_text("#route-cache")
            hit_rate = page.inner_text("#hit-rate")
            bars = page.locator("#trend rect").count()
            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOT), full_page=True)
        finally:
            browser.close()

    assert tokens_text == saved_tokens
    assert usd_today == f"${stats['saved_usd']['today']:.4f}"
    assert errors == "0"
    assert routes_cache.startswith("1 ")
    assert hit_rate == "33.3%"
    assert bars == 7
    assert SCREENSHOT.stat().st_size > 10_000
