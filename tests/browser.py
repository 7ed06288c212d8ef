"""ComfyUI's real frontend in a real browser: Debian's chromium driven by Playwright, against the test server.

Playwright's own browser download cannot work here, so it launches /usr/bin/chromium (tools/provision.py installs
it) with the flags a machine without a network needs. One browser and one page serve the whole session: loading
the frontend costs seconds, loading a workflow into it milliseconds.

Playwright's sync API keeps an asyncio loop running on the thread that uses it, and the embedded ComfyUI the other
tests boot calls asyncio.run: so every Playwright call goes to a thread of its own (`Browser.call`).
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]  # fmt: skip
VIEWPORT = {"width": 1600, "height": 1000}
# What a first visit would show over the canvas: the template browser, the Nodes 2.0 banner.
FIRST_RUN_SETTINGS = {"Comfy.TutorialCompleted": True, "Comfy.VueNodes.AutoScaleLayout": False}


class Browser:
    """Chromium under Playwright, every call made on Playwright's own thread."""

    def __init__(self, executable: Path = CHROMIUM):
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="playwright")
        self._playwright = self._browser = None
        self.call(self._start, executable)

    def _start(self, executable: Path) -> None:
        from playwright.sync_api import sync_playwright

        self._playwright = sync_playwright().start()
        self._browser = self._playwright.chromium.launch(executable_path=str(executable), args=FLAGS)

    def call(self, function: Any, *args: Any) -> Any:
        return self._thread.submit(function, *args).result()

    def new_page(self) -> Any:
        return self.call(lambda: self._browser.new_page(viewport=VIEWPORT))

    def close(self) -> None:
        def stop() -> None:
            self._browser.close()
            self._playwright.stop()

        self.call(stop)
        self._thread.shutdown()


@dataclass
class ComfyPage:
    """The frontend of one server, open in one tab; `messages` is every console line and page error it logged."""

    browser: Browser
    page: Any
    url: str
    extension: str  # the URL prefix the pack's JavaScript is served under, /extensions/<folder>/
    messages: list[tuple[str, str]] = field(default_factory=list)

    def js(self, body: str, arg: Any = None) -> Any:
        """Run `body` as an async function of `arg` in the page (app, api and the pack's modules in scope)."""
        prelude = (
            "const app = window.comfyAPI.app.app; const api = window.comfyAPI.api.api;"
            f"const ext = (name) => import('{self.extension}' + name + '.js');"
        )
        return self.browser.call(self.page.evaluate, f"async (arg) => {{ {prelude} {body} }}", arg)

    def load(self, workflow: dict) -> None:
        """Open `workflow` as a fresh tab would and wait until the extension has shaped it."""
        self.js("app.canvas.deselectAll(); await app.loadGraphData(arg, true, false)", workflow)
        self.settle()
        self.fit()

    def fit(self) -> None:
        self.js("app.canvas.deselectAll(); await app.extensionManager.command.execute('Comfy.Canvas.FitView')")
        self.settle(300)

    def settle(self, ms: int = 150) -> None:
        # The extension reacts to a change once the event that made it is over, then redraws on the next frame.
        self.browser.call(self.page.wait_for_timeout, ms)
        self.js("await new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)))")

    def set_setting(self, setting: str, value: Any) -> None:
        self.js("await app.extensionManager.setting.set(arg[0], arg[1])", [setting, value])
        self.settle(300)

    def analysis(self) -> dict:
        """What the extension's rules say of the graph on screen (roles.js), as plain JSON."""
        return self.js(
            "const [roles, graph] = [await ext('roles'), await ext('graph')];"
            "return roles.toPlain(roles.analyse(graph.plainGraph(app.graph)));"
        )

    def badges(self) -> dict[str, list[str]]:
        """The text of every badge of every node, by node id, as the canvas draws them."""
        return self.js(
            "const out = {}; for (const n of app.graph.nodes) out[n.id] = (n.badges ?? [])"
            ".map((b) => (typeof b === 'function' ? b() : b)?.text).filter(Boolean); return out;"
        )

    def extension_errors(self) -> list[str]:
        """Console errors and page errors that come from the pack's JavaScript."""
        return [text for kind, text in self.messages if kind in ("error", "pageerror") and self.extension in text]

    def screenshot(self, path: Path) -> Path:
        self.settle()
        self.browser.call(lambda: self.page.screenshot(path=str(path)))
        return path

    def wait(self, ms: int) -> None:
        self.browser.call(self.page.wait_for_timeout, ms)

    def until(self, read: Callable[[], T], done: Callable[[T], bool], timeout: float = 10.0) -> T:
        """`read()` once `done` holds for it (a renderer that draws on its own schedule), or at `timeout` seconds."""
        deadline = time.monotonic() + timeout
        value = read()
        while not done(value) and time.monotonic() < deadline:
            self.wait(100)
            value = read()
        return value

    def close(self) -> None:
        self.browser.call(self.page.close)


def seed_settings(server_url: str, settings: dict[str, Any]) -> None:
    request = urllib.request.Request(
        f"{server_url}/api/settings", data=json.dumps(settings).encode(), method="POST",
        headers={"Content-Type": "application/json"},
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=30):
        pass


def open_frontend(browser: Browser, server_url: str, extension: str, timeout_ms: float = 120_000) -> ComfyPage:
    seed_settings(server_url, FIRST_RUN_SETTINGS)
    page = browser.new_page()
    comfy = ComfyPage(browser, page, server_url, extension)

    def start() -> None:
        page.on("console", lambda message: comfy.messages.append((message.type, _console_text(message))))
        page.on("pageerror", lambda error: comfy.messages.append(("pageerror", f"{error}\n{error.stack or ''}")))
        page.goto(server_url)
        page.wait_for_function(
            "() => window.comfyAPI?.app?.app?.graph && window.comfyAPI.app.app.canvas && "
            "window.comfyAPI.app.app.extensions?.some((e) => e.name === 'Discomfort.Loops')",
            timeout=timeout_ms,
        )

    browser.call(start)
    return comfy


def _console_text(message: Any) -> str:
    location = message.location or {}
    return f"{message.text} ({location.get('url', '')}:{location.get('lineNumber', '')})"
