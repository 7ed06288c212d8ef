"""The embedded ComfyUI boots as ComfyUI's main.py does, so node packs that use the server at import load headless.

The session's custom_nodes hold tests/testing_nodes/discomfort_server_pack, which registers a route through
`PromptServer.instance.routes` and an on-prompt handler while it is imported (conftest.install_custom_nodes).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import pytest
from conftest import SERVER_PACK, read_log
from graphs import empty_image, node, port, save

pytestmark = pytest.mark.comfy

ROUTE = "/discomfort_testing/server_pack"
STAMP = "stamped on prompt"  # what the pack's on-prompt handler writes into its nodes


def stamp_pipeline(log: str, prefix: str) -> dict:
    return {
        "1": empty_image(),
        "2": port("image", ["1", 0]),
        "3": node("DiscomfortTestServerStamp", value=["2", 0], log=log, stamp="set in the file"),
        "4": save(["3", 0], prefix),
    }


def test_the_server_is_comfyuis_own_and_serves_what_packs_registered_at_import(comfy):
    import server
    from aiohttp.test_utils import make_mocked_request

    instance = server.PromptServer.instance
    assert isinstance(instance, server.PromptServer) and instance is comfy.server
    # ComfyUI's add_routes ran after the packs loaded: the route is served, and under /api as the frontend asks.
    for path in (ROUTE, "/api" + ROUTE):
        request = make_mocked_request("GET", path, app=instance.app)

        async def serve(request=request):
            match = await instance.app.router.resolve(request)
            return await match.handler(request)

        assert "stamped" in json.loads(asyncio.run(serve()).body)
    assert "/object_info" in {getattr(resource, "canonical", None) for resource in instance.app.router.resources()}


def test_comfyuis_own_nodes_that_use_the_server_at_import_load(comfy):
    import server

    # 0.33's comfy_extras/nodes_replacements.py registers replacements with the server's manager at import; it
    # failed to import when the server was set only after the nodes loaded.
    manager = getattr(server.PromptServer.instance, "node_replace_manager", None)
    if manager is None:
        pytest.skip("this ComfyUI has no node replacements (they came after 0.3.75)")
    assert manager.has_replacement("ResizeImagesByLongerEdge")


def test_on_prompt_handlers_rewrite_headless_prompts_and_the_node_reaches_the_server(comfy, log_file):
    stamp = node("DiscomfortTestServerStamp", value=["1", 0], log=str(log_file), stamp="set in the prompt")
    prompt = {"1": empty_image(), "2": stamp, "3": node("PreviewImage", images=["2", 0])}
    result = comfy.run(prompt)
    assert read_log(log_file) == [STAMP]
    assert ("discomfort_testing.stamp", {"stamp": STAMP}) in result.messages


def test_the_pack_runs_in_a_runtime_loop(comfy, log_file):
    import discomfort

    with discomfort.Runtime() as rt:
        result = rt.run([stamp_pipeline(str(log_file), "server_pack/runtime")])
    # A loop body is not a queued prompt: the file's own stamp stands.
    assert read_log(log_file) == ["set in the file"]
    assert [image["subfolder"] for image in result.images] == ["server_pack"]


def test_the_pack_runs_under_the_cli_from_a_custom_nodes_folder(tmp_path):
    custom_nodes = tmp_path / "custom_nodes"
    custom_nodes.mkdir()
    (custom_nodes / "server_pack").symlink_to(SERVER_PACK, target_is_directory=True)
    log = tmp_path / "runs.log"
    workflow = tmp_path / "stamp.json"
    workflow.write_text(json.dumps(stamp_pipeline(str(log), "stamped")))
    done = subprocess.run([sys.executable, "-m", "discomfort", "run", str(workflow), "--custom-nodes",
                           str(custom_nodes), "-o", str(tmp_path / "out")], capture_output=True, text=True,
                          cwd=tmp_path, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert log.read_text().splitlines() == ["set in the file"]
    assert list((tmp_path / "out").glob("stamped_*.png"))
