"""The plugin `dev.py comfy-suite` gives ComfyUI's own suite (tools/pytest_plugins/comfy_server_wait.py), on a
suite shaped like ComfyUI's: a `server` fixture that starts a slow server and returns, a client that connects once."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from comfy_client import free_port

PLUGINS = Path(__file__).resolve().parent.parent / "tools" / "pytest_plugins"

CONFTEST = textwrap.dedent("""
    import subprocess, sys
    import pytest

    SLOW_SERVER = ("import http.server, sys, time; time.sleep(3); http.server.ThreadingHTTPServer("
                   "('127.0.0.1', int(sys.argv[1])), http.server.SimpleHTTPRequestHandler).serve_forever()")

    def pytest_addoption(parser):  # ComfyUI's tests/conftest.py has these two
        parser.addoption("--listen", default="127.0.0.1")
        parser.addoption("--port", type=int, default=8188)

    @pytest.fixture(scope="class")
    def server(request):
        process = subprocess.Popen([sys.executable, "-c", SLOW_SERVER, str(request.config.getoption("port"))])
        yield
        process.kill()
        process.wait()
""")
TESTS = textwrap.dedent("""
    import urllib.request

    class TestSuite:
        def test_connects_at_once(self, server, request):
            urllib.request.urlopen(f"http://127.0.0.1:{request.config.getoption('port')}/", timeout=5).close()
""")


def run_suite(tmp_path: Path, *options: str) -> subprocess.CompletedProcess:
    (tmp_path / "conftest.py").write_text(CONFTEST)
    (tmp_path / "test_suite.py").write_text(TESTS)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(PLUGINS), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "pytest", str(tmp_path), "-q", "-p", "no:cacheprovider",
                           "--port", str(free_port()), *options], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=120)  # fmt: skip


def test_the_client_finds_the_server_up_when_the_plugin_waits(tmp_path):
    done = run_suite(tmp_path, "-p", "comfy_server_wait")
    assert done.returncode == 0, done.stdout + done.stderr


def test_without_it_the_client_is_too_early(tmp_path):
    done = run_suite(tmp_path)
    assert done.returncode == 1 and "Connection refused" in done.stdout
