"""The real tierline service in a subprocess and a real Chromium, for the dashboard's browser tests
(tests/test_web_browser.py).

`start_server(folder)` runs ``tierline serve --host 127.0.0.1 --port <free port>`` with
``TIERLINE_HOME`` in `folder` (SQLite), waits for ``/readyz`` and logs to ``folder/server.log``;
keys come from the real ``tierline keys create --role ROLE --json``. The browser is Debian's
``/usr/bin/chromium`` driven by Playwright (no browser download): when it is absent the browser
tests are skipped, unless ``TIERLINE_REQUIRE_BROWSER=1``, when they fail.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import pytest

from helpers import PROJECT, run_cli, serve_ready, stop_process

CHROMIUM = Path(os.environ.get("TIERLINE_CHROMIUM", "/usr/bin/chromium"))
REQUIRE_ENV = "TIERLINE_REQUIRE_BROWSER"
ARTIFACTS = PROJECT / "artifacts"
STARTUP_SECONDS = 60.0


def require_browser() -> None:
    """Skip (or, with TIERLINE_REQUIRE_BROWSER=1, fail) when Chromium or Playwright is missing."""
    missing = None
    if not CHROMIUM.exists():
        missing = f"{CHROMIUM} is absent (apt-get install -y chromium)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            missing = "playwright is not installed (pip install -e '.[dev]')"
    if missing:
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(f"{REQUIRE_ENV}=1 but {missing}")
        pytest.skip(missing)


@dataclass
class WebServer:
    base_url: str
    home: Path
    log_path: Path
    process: subprocess.Popen[bytes]
    keys: dict[str, str] = field(default_factory=dict)

    @property
    def env(self) -> dict[str, str]:
        return {"TIERLINE_HOME": str(self.home)}

    def key(self, role: str) -> str:
        """A key of `role` from ``tierline keys create --json`` (one per role, made on first use)."""
        if role not in self.keys:
            result = run_cli(
                "keys", "create", "--role", role, "--label", f"{role} in the browser", "--json", env=self.env
            )
            assert result.code == 0, result.stderr
            self.keys[role] = result.json()["key"]
        return self.keys[role]

    def api(self, role: str) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, headers={"Authorization": f"Bearer {self.key(role)}"}, timeout=60.0)

    def stop(self) -> None:
        stop_process(self.process)


def start_server(folder: Path) -> WebServer:
    home = folder / "home"
    home.mkdir(parents=True, exist_ok=True)
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("TIERLINE_POLICY_DIR", "TIERLINE_DEBUG", "TIERLINE_DATABASE_URL")
    }
    env["TIERLINE_HOME"] = str(home)
    env["PYTHONUNBUFFERED"] = "1"
    process, base_url, log_path = serve_ready(folder, env, STARTUP_SECONDS)
    return WebServer(base_url, home, log_path, process)


MB = 1_000_000
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}


class Tab:
    """A signed-in browser context on the test server that refuses (and records) any other host."""

    def __init__(self, browser: Any, server: WebServer, role: str | None, viewport: dict[str, int] = DESKTOP) -> None:
        self.server = server
        self.context = browser.new_context(viewport=viewport, accept_downloads=True)
        self.foreign: list[str] = []
        self.context.route("**/*", self._only_server)
        self.page = self.context.new_page()
        self.page.set_default_timeout(30_000)
        self.errors: list[str] = []
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        if role:
            self.sign_in(server.key(role))

    def _only_server(self, route: Any) -> None:
        url = urlparse(route.request.url)
        if url.scheme in ("data", "blob") or f"{url.scheme}://{url.netloc}" == self.server.base_url:
            route.continue_()
        else:
            self.foreign.append(route.request.url)
            route.abort()

    def sign_in(self, key: str) -> None:
        self.page.goto(self.server.base_url + "/")
        assert "/dashboard/login" in self.page.url
        self.page.get_by_label("API key").fill(key)
        self.page.get_by_role("button", name="Sign in").click()
        self.page.wait_for_url(re.compile(r".*/dashboard/map.*"))

    def go(self, path: str) -> Any:
        response = self.page.goto(self.server.base_url + path)
        assert response is not None and response.status < 400, f"{path}: {response and response.status}"
        return response

    def check_page(self, path: str, shot: str) -> None:
        """Load `path` without cache: under 1 MB transferred, no wider than the window, every
        control labelled; then a full-page screenshot `shot` in artifacts/."""
        cdp = self.context.new_cdp_session(self.page)
        cdp.send("Network.enable")
        cdp.send("Network.setCacheDisabled", {"cacheDisabled": True})
        sizes: dict[str, float] = {}
        cdp.on("Network.loadingFinished", lambda e, s=sizes: s.__setitem__(e["requestId"], e["encodedDataLength"]))
        self.go(path)
        self.page.wait_for_load_state("networkidle")
        total = sum(sizes.values())
        assert 0 < total < MB, f"{path}: {total} bytes transferred"
        cdp.detach()
        overflow = self.page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 1, f"{path} ({shot}): {overflow}px wider than the window"
        unlabelled = self.page.evaluate(
            """() => Array.from(document.querySelectorAll('input, select, textarea'))
                .filter(e => e.type !== 'hidden' && !e.closest('[hidden]'))
                .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')
                             && !e.getAttribute('aria-labelledby'))
                .map(e => e.name || e.id)"""
        )
        assert unlabelled == [], f"{path}: controls without a label: {unlabelled}"
        self.shot(shot)

    def shot(self, name: str) -> None:
        self.page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)

    def close(self) -> None:
        assert not self.foreign, f"requests to other hosts: {self.foreign}"
        assert not self.errors, f"script errors: {self.errors}"
        self.context.close()
