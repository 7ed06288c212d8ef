"""A pytest plugin for ComfyUI's own tests/execution suite, as `tools/dev.py comfy-suite` runs it.

Each of that suite's server fixtures (`server`, `_server`) starts `python main.py ... --port PORT` and returns; the
client fixture then tries to connect five times, four seconds apart, so a server gets 20 seconds to come up. On a
loaded two-core machine ComfyUI 0.33 often needs more (183 of its 281 tests once failed on the connection alone).
Rather than edit ComfyUI's files, this waits after every such fixture has started its server until the server
answers `GET /system_stats`, for up to `--server-wait` seconds; the suite's own tries then find it up. A server
that never answers is left to the suite's tries to report.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--server-wait", type=float, default=300.0, metavar="SECONDS",
                     help="how long to wait for each server ComfyUI's suite starts (default 300)")  # fmt: skip


@pytest.hookimpl(hookwrapper=True)
def pytest_fixture_setup(fixturedef: pytest.FixtureDef, request: pytest.FixtureRequest):
    yield
    if not fixturedef.argname.endswith("server"):
        return
    config = request.config
    url = f"http://{config.getoption('listen')}:{config.getoption('port')}/system_stats"
    deadline = time.monotonic() + config.getoption("server_wait")
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=5):
                return
        except urllib.error.HTTPError:
            return  # it answers
        except OSError:
            time.sleep(0.5)
