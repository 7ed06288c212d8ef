"""Shared fixtures: a real ComfyUI, in-process and as a server, with Discomfort installed in its custom_nodes.

Both load Discomfort the way a user's ComfyUI does, through ComfyUI's own custom-node loader from a custom_nodes
folder holding a link to this checkout. ComfyUI comes from $COMFYUI_PATH, which `tools/dev.py test` sets to the
provisioned runtime.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from comfy_client import comfy_server, link_custom_node

REPO = Path(__file__).resolve().parent.parent
# Deliberately not "discomfort": ComfyUI must load the pack whatever its folder is called.
CUSTOM_NODE_NAME = "comfyui-discomfort"


def comfyui_root() -> Path:
    path = os.environ.get("COMFYUI_PATH")
    if not path:
        pytest.fail("COMFYUI_PATH is not set: run the tests with `python3 tools/dev.py test`", pytrace=False)
    return Path(path).resolve()


@pytest.fixture(scope="session")
def comfy(tmp_path_factory):
    """ComfyUI booted in this process once per session, Discomfort loaded by ComfyUI's custom-node loader."""
    from discomfort.executor.embedded import boot

    base = tmp_path_factory.mktemp("inprocess")
    link_custom_node(base / "custom_nodes", REPO, CUSTOM_NODE_NAME)
    return boot(
        comfyui_root(),
        custom_node_dirs=[base / "custom_nodes"],
        register_discomfort=False,
        output_directory=base / "output",
        input_directory=base / "input",
        temp_directory=base / "temp",
        user_directory=base / "user",
    )


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    """ComfyUI's main.py on 127.0.0.1, Discomfort in its custom_nodes; stopped by PID at the end of the session."""
    base = tmp_path_factory.mktemp("server")
    link_custom_node(base / "custom_nodes", REPO, CUSTOM_NODE_NAME)
    with comfy_server(comfyui_root(), base) as running:
        yield running


@pytest.fixture
def client(server):
    client = server.client()
    yield client
    client.close()
