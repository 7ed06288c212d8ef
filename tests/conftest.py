"""Shared fixtures: a real ComfyUI, in-process and as a server, with Discomfort installed in its custom_nodes.

Both load Discomfort the way a user's ComfyUI does, through ComfyUI's own custom-node loader from a custom_nodes
folder holding a link to this checkout. ComfyUI comes from $COMFYUI_PATH, which `tools/dev.py test` sets to the
provisioned runtime.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from comfy_client import comfy_server, link_custom_node

REPO = Path(__file__).resolve().parent.parent
TESTING_NODES = Path(__file__).resolve().parent / "testing_nodes" / "discomfort_testing"
# A pack that registers a route and an on-prompt handler on ComfyUI's server while it is imported.
SERVER_PACK = Path(__file__).resolve().parent / "testing_nodes" / "discomfort_server_pack"
# Deliberately not "discomfort": ComfyUI must load the pack whatever its folder is called.
CUSTOM_NODE_NAME = "comfyui-discomfort"
VUE_NODES = "Comfy.VueNodes.Enabled"  # the frontend setting that switches to Nodes 2.0, the Vue renderer
SETTINGS = ("Discomfort.Badges", "Discomfort.BodyHighlight", "Discomfort.IterationCounter")


def comfyui_root() -> Path:
    path = os.environ.get("COMFYUI_PATH")
    if not path:
        pytest.fail("COMFYUI_PATH is not set: run the tests with `python3 tools/dev.py test`", pytrace=False)
    return Path(path).resolve()


def install_custom_nodes(folder: Path) -> None:
    link_custom_node(folder, REPO, CUSTOM_NODE_NAME)
    link_custom_node(folder, TESTING_NODES, "discomfort_testing")
    link_custom_node(folder, SERVER_PACK, "discomfort_server_pack")


@pytest.fixture(scope="session")
def comfy(tmp_path_factory):
    """ComfyUI booted in this process once per session, Discomfort loaded by ComfyUI's custom-node loader."""
    from discomfort.executor.embedded import boot

    base = tmp_path_factory.mktemp("inprocess")
    install_custom_nodes(base / "custom_nodes")
    return boot(
        comfyui_root(),
        custom_node_dirs=[base / "custom_nodes"],
        register_discomfort=False,
        api_nodes=True,  # their node classes: the official templates use them, and the converter must know them
        output_directory=base / "output",
        input_directory=base / "input",
        temp_directory=base / "temp",
        user_directory=base / "user",
    )


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    """ComfyUI's main.py on 127.0.0.1, Discomfort in its custom_nodes; stopped by PID at the end of the session."""
    base = tmp_path_factory.mktemp("server")
    install_custom_nodes(base / "custom_nodes")
    with comfy_server(comfyui_root(), base) as running:
        yield running


@pytest.fixture(scope="session")
def browser():
    """Debian's chromium, headless, driven by Playwright; one for the session."""
    from browser import CHROMIUM, Browser

    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `python3 tools/dev.py test` installs it as root (apt-get install "
                    "chromium)", pytrace=False)  # fmt: skip
    launched = Browser()
    yield launched
    launched.close()


@pytest.fixture(scope="session")
def frontend(server, browser):
    """ComfyUI's frontend from the session server, open in one tab for the session, the pack's extension loaded."""
    from browser import open_frontend

    page = open_frontend(browser, server.url, f"/extensions/{CUSTOM_NODE_NAME}/")
    yield page
    page.close()


@pytest.fixture
def ui(frontend):
    """The session's page, classic canvas, every Discomfort setting on; no extension error by the end."""
    for setting in SETTINGS:
        frontend.set_setting(setting, True)
    frontend.set_setting(VUE_NODES, False)
    # What an earlier test left open over the canvas (an error dialog after a failed run, toasts).
    frontend.js("document.querySelectorAll('.p-dialog-close-button, .p-toast-close-button').forEach((b) => b.click())")
    frontend.messages.clear()
    yield frontend
    assert frontend.extension_errors() == []


@pytest.fixture(params=["classic", "nodes 2.0"])
def renderer(request, ui):
    """Both renderers: the classic canvas and Nodes 2.0 (the Vue renderer)."""
    ui.set_setting(VUE_NODES, request.param != "classic")
    ui.wait(500)
    return request.param


@pytest.fixture
def client(server):
    client = server.client()
    yield client
    client.close()


@pytest.fixture
def log_file(tmp_path):
    """A file the testing nodes append to, one line per run; `read_log()` gives the lines."""
    path = tmp_path / "runs.log"
    path.touch()
    return path


def read_log(path: Path) -> list[str]:
    return path.read_text().splitlines()


@pytest.fixture(scope="session")
def loaded(comfy):
    """Discomfort's package and the testing pack as ComfyUI's loader imported them (not `import discomfort`).

    The nodes ComfyUI runs belong to these module objects, so tests that call the engine directly or read what
    a capture node kept must go through them.
    """
    import nodes

    def package_of(node_class: str):
        module = sys.modules[nodes.NODE_CLASS_MAPPINGS[node_class].__module__]
        root = module.__name__.split(".executor")[0].split(".ports")[0]
        return sys.modules[root]

    return SimpleNamespace(discomfort=package_of("DiscomfortLoop"), testing=package_of("DiscomfortTestCapture"))


@pytest.fixture
def captured(loaded):
    """The values capture nodes received in this test, by label."""
    loaded.testing.CAPTURED.clear()
    return loaded.testing.CAPTURED
