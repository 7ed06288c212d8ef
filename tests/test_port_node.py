"""DiscomfortPort on a real ComfyUI: loaded by ComfyUI's own loader, passes values through, validates its uid."""

from __future__ import annotations

import io

import pytest
from graphs import COLOR, assert_inverted, invert_through_port
from PIL import Image

pytestmark = pytest.mark.comfy


def test_loaded_through_comfyuis_custom_node_loader(comfy):
    import nodes

    port = nodes.NODE_CLASS_MAPPINGS["DiscomfortPort"]
    assert port.RELATIVE_PYTHON_MODULE == "custom_nodes.comfyui-discomfort"
    assert nodes.NODE_DISPLAY_NAME_MAPPINGS["DiscomfortPort"] == "Discomfort Port"


def test_passthru_port_between_typed_sockets_runs_in_process(comfy, request):
    result = comfy.run(invert_through_port(request.node.name))
    (image,) = result.images()
    with Image.open(comfy.output_directory / image["subfolder"] / image["filename"]) as saved:
        assert_inverted(saved.convert("RGB").getpixel((0, 0)))


def test_port_passes_any_type_through(comfy, request):
    # A LATENT, not an IMAGE, through the same wildcard port: EmptyLatentImage -> port -> LatentUpscaleBy -> decode
    # would need a VAE, so check the type at validation and execution with a latent-only chain ending in an output.
    prompt = {
        "1": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 2}},
        "2": {"class_type": "DiscomfortPort", "inputs": {"unique_id": "latent", "tags": "a, b", "value": ["1", 0]}},
        "3": {"class_type": "LatentUpscaleBy", "inputs": {"samples": ["2", 0], "upscale_method": "nearest-exact",
                                                          "scale_by": 2.0}},
        "4": {"class_type": "SaveLatent", "inputs": {"samples": ["3", 0], "filename_prefix": request.node.name}},
    }  # fmt: skip
    result = comfy.run(prompt)
    assert result.outputs["4"]["latents"], "SaveLatent reported no file"


def test_empty_unique_id_is_refused_with_the_node_id(comfy, request):
    from discomfort.errors import PromptValidationError

    prompt = invert_through_port(request.node.name)
    prompt["2"]["inputs"]["unique_id"] = "   "
    with pytest.raises(PromptValidationError) as caught:
        comfy.run(prompt)
    assert "node 2 (DiscomfortPort)" in str(caught.value)
    assert "non-empty unique_id" in str(caught.value)


def test_server_lists_discomfort_nodes(client):
    info = client.get_json("/object_info")
    port = info["DiscomfortPort"]
    assert list(port["input"]["required"]) == ["unique_id", "tags"]
    assert list(port["input"]["optional"]) == ["value"]
    assert port["output"] == ["*"]
    assert port["category"] == "Discomfort"


def test_passthru_port_runs_on_the_server(client, request):
    run = client.run(invert_through_port(request.node.name))
    assert run.status == "success", run.messages
    (image,) = run.outputs()["4"]["images"]
    with Image.open(io.BytesIO(client.view(image))) as saved:
        assert_inverted(saved.convert("RGB").getpixel((3, 3)), COLOR)


def test_server_refuses_empty_unique_id_naming_the_node(client, request):
    from comfy_client import PromptRejected

    prompt = invert_through_port(request.node.name)
    prompt["2"]["inputs"]["unique_id"] = ""
    with pytest.raises(PromptRejected) as caught:
        client.queue(prompt)
    assert caught.value.status == 400
    errors = caught.value.body["node_errors"]
    assert list(errors) == ["2"]
    assert "non-empty unique_id" in errors["2"]["errors"][0]["details"]
