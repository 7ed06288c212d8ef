"""The bad-input corpus (tests/bad_inputs/cases.json): every case gives an error naming what is at fault, the
server keeps serving, and no partial file is left behind."""

from __future__ import annotations

import base64
import json
from contextlib import contextmanager
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


@pytest.mark.parametrize(("name", "message"), [
    ("a\x00b", "checkpoint 'a\\x00b' holds a NUL character"),
    ("x" * 300, "checkpoint 'xxxxx"),
    ("a/" + "x" * 256, "at most 255 bytes between slashes"),
    ("\ud83d", "not valid text"),
    (["a"], "checkpoint ['a'] is a list, not text"),
    ("C:\\Windows", "give a checkpoint folder name relative to"),
    ("\\\\server\\share", "give a checkpoint folder name relative to"),
    ("..\\..\\escaped", "is outside"),
])  # fmt: skip
def test_names_a_widget_gives_are_refused_naming_the_widget_and_the_value(name, message, tmp_path):
    from discomfort.errors import WorkflowError
    from discomfort.workflow.files import resolve_under

    with pytest.raises(WorkflowError) as refused:
        resolve_under(tmp_path, name, "checkpoint folder", widget="checkpoint")
    assert message in str(refused.value)
    assert len(str(refused.value)) < 300 + len(str(tmp_path))  # long values are cut in messages


def test_names_written_the_windows_way_mean_the_same_here(tmp_path):
    from discomfort.workflow.files import resolve_under

    assert resolve_under(tmp_path, "renders\\day1\\a.png", "saved image") == tmp_path.resolve() / "renders/day1/a.png"


@pytest.mark.comfy
@pytest.mark.parametrize("case", [c for c in CASES if c["kind"] == "file"], ids=lambda c: c["name"])
def test_workflow_file_case(case, comfy, tmp_path):
    import numpy as np

    import discomfort
    from discomfort.errors import DiscomfortError

    if case.get("setup") == "foreign_folder":
        (tmp_path / "not_a_checkpoint").mkdir()
        (tmp_path / "not_a_checkpoint" / "notes.txt").write_text("mine")
    path = tmp_path / "workflow.json"
    path.write_text(case["text"] if "text" in case else json.dumps(case["json"]))
    made = {"IMAGE": lambda: torch.rand(1, 8, 8, 3), "NDARRAY": lambda: np.array([True, True])}
    inputs = {uid: made[value]() if value in made else value for uid, value in case.get("inputs", {}).items()}
    options = substitute(case.get("options", {}), {"TMP": str(tmp_path)})
    with discomfort.Runtime() as rt:
        if "error" not in case:  # a rule rather than an error: the run ends as "result" says
            result = rt.run([path], inputs, **options)
            assert {name: getattr(result, name) for name in case["result"]} == case["result"]
            return
        with pytest.raises(DiscomfortError) as caught:
            rt.run([path], inputs, **options)
    assert matches(str(caught.value), case["error"]), str(caught.value)
    if case.get("setup") == "foreign_folder":
        assert (tmp_path / "not_a_checkpoint" / "notes.txt").read_text() == "mine"


def substitute(value, names: dict[str, str]):
    """`value` with every "$NAME" in its strings replaced by names[NAME]."""
    if isinstance(value, str):
        for name, text in names.items():
            value = value.replace(f"${name}", text)
        return value
    if isinstance(value, list):
        return [substitute(item, names) for item in value]
    if isinstance(value, dict):
        return {key: substitute(item, names) for key, item in value.items()}
    return value


def png(path: Path) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (4, 4), (200, 10, 10)).save(path)


# What a server case needs before its prompt runs, and what must hold after it. Each setup gets the case, the
# server, a client and a scratch folder, yields the names its prompt's "$NAME"s stand for (and optionally
# "during": what to do while the prompt runs), and finds the finished run under "run".


@contextmanager
def no_setup(case, server, client, tmp_path):
    yield {}


@contextmanager
def text_folder(case, server, client, tmp_path):
    (server.base_directory / "input" / "bad_input_texts").mkdir(parents=True, exist_ok=True)
    (server.base_directory / "input" / "bad_input_texts" / "notes.txt").write_text("not an image")
    yield {}


@contextmanager
def empty_folder(case, server, client, tmp_path):
    (server.base_directory / "input" / "bad_input_empty").mkdir(parents=True, exist_ok=True)
    yield {}


@contextmanager
def image_outside_the_folder(case, server, client, tmp_path):
    png(server.base_directory / "input" / "pattern_probe" / "inside.png")
    png(server.base_directory / "outside.png")
    yield {}


@contextmanager
def two_images(case, server, client, tmp_path):
    for name in ("a.png", "b.png"):
        png(server.base_directory / "input" / "two_images" / name)
    yield {}


@contextmanager
def workflow_link_out(case, server, client, tmp_path):
    outside = server.base_directory / "outside_workflows" / "escape.json"
    outside.parent.mkdir(exist_ok=True)
    outside.write_text(json.dumps(case["outside_workflow"]))
    link = server.base_directory / "user" / "default" / "workflows" / "escape.json"
    link.parent.mkdir(parents=True, exist_ok=True)
    link.unlink(missing_ok=True)
    link.symlink_to(outside)
    yield {}


@contextmanager
def foreign_checkpoint_folder(case, server, client, tmp_path):
    notes = server.base_directory / "output" / "discomfort" / "checkpoints" / "not_mine" / "notes.txt"
    notes.parent.mkdir(parents=True, exist_ok=True)
    notes.write_text("mine")
    yield {}
    assert notes.read_text() == "mine"


@contextmanager
def foreign_kept_folder(case, server, client, tmp_path):
    notes = server.base_directory / "output" / "not_mine_kept" / "notes.txt"
    notes.parent.mkdir(parents=True, exist_ok=True)
    notes.write_text("mine")
    yield {}
    assert sorted(path.name for path in notes.parent.iterdir()) == ["notes.txt"] and notes.read_text() == "mine"


@contextmanager
def workflow_files(case, server, client, tmp_path):
    """The case's "workflows" in the user workflows folder, and its "linked_out" ones outside it, linked in."""
    folder = server.base_directory / "user" / "default" / "workflows"
    folder.mkdir(parents=True, exist_ok=True)
    for name, graph in case.get("workflows", {}).items():
        (folder / name).write_text(json.dumps(graph))
    for name, graph in case.get("linked_out", {}).items():
        outside = server.base_directory / "outside_workflows" / name
        outside.parent.mkdir(exist_ok=True)
        outside.write_text(json.dumps(graph))
        (folder / name).unlink(missing_ok=True)
        (folder / name).symlink_to(outside)
    yield {}


@contextmanager
def first_run(case, server, client, tmp_path):
    """Runs the case's "first" prompt, which must succeed (a run whose checkpoint the case's prompt resumes)."""
    run = client.run(case["first"])
    assert run.status == "success", run.messages[-3:]
    yield {}


@contextmanager
def edited_checkpoint_state(case, server, client, tmp_path):
    """As an attacker would: the first run's state.json downloaded through /view, its paths pointed at a folder
    outside ComfyUI, and uploaded back through /upload/image."""
    precious = server.base_directory / "precious" / "keep.txt"
    precious.parent.mkdir(exist_ok=True)
    precious.write_text("do not delete")
    with first_run(case, server, client, tmp_path):
        where = {"filename": "state.json", "subfolder": "discomfort/checkpoints/edited_state", "type": "output"}
        state = json.loads(client.view(where))
        state.update(values="../../../../precious", uids=[])
        client.upload(json.dumps(state).encode(), "state.json", where["subfolder"], "output", overwrite=True)
        yield {}
    assert precious.read_text() == "do not delete"


@contextmanager
def describer_endpoint(case, server, client, tmp_path):
    """A local endpoint scripted by the case (and a second one on another host name, $OTHER), the key in the
    server's user/discomfort/api_key. The key must reach neither /history nor the server's log."""
    from endpoint import KEY, endpoint

    key_file = server.base_directory / "user" / "discomfort" / "api_key"
    key_file.parent.mkdir(parents=True, exist_ok=True)
    key_file.write_text(KEY)
    with endpoint() as main, endpoint("localhost") as other:
        context = {"ENDPOINT": main.url, "OTHER": other.url}
        script = substitute(case.get("script", []), context)  # e.g. ["redirect", 307, "$OTHER/chat/completions"]
        main.script = [tuple(step) if isinstance(step, list) else step for step in script]
        if case.get("interrupt"):
            context["during"] = lambda client: (main.arrived.wait(30), client.interrupt())
        try:
            yield context
        finally:
            key_file.unlink()
        if "requests" in case:
            assert len(main.seen) == case["requests"], main.seen
        if case.get("cut_short"):
            assert True not in main.finished, "the describer waited for the whole answer"
        assert not [seen for seen in other.seen if KEY in (seen["auth"] or "")], "the key went to another host"
    # the key's head, not the whole key: a message that cuts what it quotes could keep a part of it
    assert KEY[:16] not in json.dumps(context["run"].history if context["run"] else {})
    assert KEY[:16] not in server.log_path.read_text(errors="replace")


SETUPS = {
    None: no_setup,
    "text_folder": text_folder,
    "empty_folder": empty_folder,
    "image_outside_the_folder": image_outside_the_folder,
    "two_images": two_images,
    "workflow_link_out": workflow_link_out,
    "foreign_checkpoint_folder": foreign_checkpoint_folder,
    "foreign_kept_folder": foreign_kept_folder,
    "workflow_files": workflow_files,
    "first_run": first_run,
    "edited_checkpoint_state": edited_checkpoint_state,
    "describer_endpoint": describer_endpoint,
}


def generated(spec: dict) -> dict:
    """Prompts too large to write out in the corpus, made from a short spec."""
    from graphs import nested

    ((kind, size),) = spec.items()
    assert kind == "nested", kind
    prompt, result = nested([(f"l{level}", 1) for level in range(1, size + 1)])
    return {**prompt, "save": {"class_type": "DiscomfortTestCapture", "inputs": {"value": result, "label": "x"}}}


@pytest.mark.comfy
@pytest.mark.parametrize("case", [c for c in CASES if c["kind"] == "server"], ids=lambda c: c["name"])
def test_server_case(case, server, client, tmp_path):
    """Over HTTP: the case's error (or, for "interrupted", a clean interrupt; or, with "outputs" and no error,
    those outputs) and nothing else."""
    from comfy_client import PromptRejected

    with SETUPS[case.get("setup")](case, server, client, tmp_path) as context:
        prompt = (generated(case["generate"]) if "generate" in case
                  else substitute(case["json"], {k: v for k, v in context.items() if isinstance(v, str)}))  # fmt: skip
        try:
            prompt_id = client.queue(prompt)
            if "during" in context:
                context["during"](client)
            run = context["run"] = client.wait(prompt_id)
            errors = [event["exception_message"] for event in run.events("execution_error")]
        except PromptRejected as rejected:
            run = context["run"] = None
            errors = [json.dumps(rejected.body)]
    if case.get("error") == "interrupted":
        assert run is not None and run.events("execution_interrupted") and not errors, errors
    elif "error" in case:
        assert errors and matches(errors[0], case["error"]), errors
    else:
        assert run is not None and run.status == "success", errors or run.messages[-3:]
    for node_id, expected in case.get("outputs", {}).items():
        assert run.outputs()[node_id] == expected, run.outputs()
    assert client.get_json("/system_stats")["system"]  # still serving
    leftovers = [path for path in server.base_directory.rglob("*.tmp")]
    assert not leftovers, leftovers


def test_the_corpus_is_large_enough():
    assert len(CASES) >= 30 and len({case["name"] for case in CASES}) == len(CASES)
