"""The bad-input corpus (tests/bad_inputs/cases.json): every case gives an error naming what is at fault, the
server keeps serving, and no partial file is left behind."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
import torch

CASES = json.loads((Path(__file__).resolve().parent / "bad_inputs" / "cases.json").read_text())


def matches(message: str, expected: str) -> bool:
    return any(part in message for part in expected.split("|"))


class Opaque:
    """Something only pickle can store."""


def envelope_case(mutation: str, tmp_path: Path):
    from discomfort.serialization import Limits, SigningKey, decode, encode

    key = SigningKey.load_or_create(tmp_path / "key")
    if mutation in ("unsigned", "forged", "foreign"):
        signer = SigningKey.load_or_create(tmp_path / "other") if mutation == "foreign" else key
        envelope = encode(Opaque(), key=signer)
        if mutation == "unsigned":
            del envelope["meta"]["signatures"]
        if mutation == "forged":
            import cloudpickle

            envelope["content"] = base64.b64encode(cloudpickle.dumps(["a payload someone else wrote"])).decode()
        return lambda: decode(envelope, key=key)
    envelope = encode(torch.ones(64, 64), key=key)
    if mutation == "oversize":
        return lambda: decode(envelope, key=key, limits=Limits(max_base64_chars=1024))
    if mutation == "truncate":
        envelope["content"] = envelope["content"][: len(envelope["content"]) // 2]
    elif mutation == "shape":
        envelope["meta"]["shape"] = [2, 2]
    elif mutation == "type":
        envelope["type"] = "executable"
    return lambda: decode(envelope, key=key)


@pytest.mark.parametrize("case", [c for c in CASES if c["kind"] in ("interface", "stitch", "envelope")],
                         ids=lambda c: c["name"])  # fmt: skip
def test_pure_case(case, tmp_path):
    from discomfort.errors import DiscomfortError
    from discomfort.ports import interface
    from discomfort.ports.stitch import stitch_api

    if case["kind"] == "interface":
        attempt = lambda: interface(case["json"])  # noqa: E731
    elif case["kind"] == "stitch":
        attempt = lambda: stitch_api(case["json"])  # noqa: E731
    else:
        attempt = envelope_case(case["mutate"], tmp_path)
    with pytest.raises(DiscomfortError) as caught:
        attempt()
    assert matches(str(caught.value), case["error"]), str(caught.value)


@pytest.mark.comfy
@pytest.mark.parametrize("case", [c for c in CASES if c["kind"] == "file"], ids=lambda c: c["name"])
def test_workflow_file_case(case, comfy, tmp_path):
    import discomfort
    from discomfort.errors import DiscomfortError

    path = tmp_path / "workflow.json"
    path.write_text(case["text"] if "text" in case else json.dumps(case["json"]))
    inputs = {
        uid: torch.rand(1, 8, 8, 3) if value == "IMAGE" else value for uid, value in case.get("inputs", {}).items()
    }
    with discomfort.Runtime() as rt, pytest.raises(DiscomfortError) as caught:
        rt.run([path], inputs, **case.get("options", {}))
    assert matches(str(caught.value), case["error"]), str(caught.value)


def generated(spec: dict) -> dict:
    """Prompts too large to write out in the corpus, made from a short spec."""
    from graphs import nested

    ((kind, size),) = spec.items()
    assert kind == "nested", kind
    prompt, result = nested([(f"l{level}", 1) for level in range(1, size + 1)])
    return {**prompt, "save": {"class_type": "DiscomfortTestCapture", "inputs": {"value": result, "label": "x"}}}


@pytest.mark.comfy
@pytest.mark.parametrize("case", [c for c in CASES if c["kind"] == "server"], ids=lambda c: c["name"])
def test_server_case(case, server, client):
    from comfy_client import PromptRejected

    inputs = server.base_directory / "input"
    if case.get("setup") == "text_folder":
        (inputs / "bad_input_texts").mkdir(parents=True, exist_ok=True)
        (inputs / "bad_input_texts" / "notes.txt").write_text("not an image")
    elif case.get("setup") == "empty_folder":
        (inputs / "bad_input_empty").mkdir(parents=True, exist_ok=True)
    prompt = generated(case["generate"]) if "generate" in case else case["json"]
    try:
        run = client.run(prompt)
        errors = [event["exception_message"] for event in run.events("execution_error")]
    except PromptRejected as rejected:
        errors = [json.dumps(rejected.body)]
    assert errors and matches(errors[0], case["error"]), errors
    assert client.get_json("/system_stats")["system"]  # still serving
    leftovers = [path for path in server.base_directory.rglob("*.tmp")]
    assert not leftovers, leftovers


def test_the_corpus_is_large_enough():
    assert len(CASES) >= 30 and len({case["name"] for case in CASES}) == len(CASES)
