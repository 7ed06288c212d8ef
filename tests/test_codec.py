"""The value envelope: round trips, signing, and refusals (pure: no ComfyUI)."""

from __future__ import annotations

import contextlib
import json
import stat

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import load as safetensors_load

from discomfort.errors import SerializationError, UntrustedPickleError
from discomfort.serialization import Limits, SigningKey, decode, dumps, encode, loads
from discomfort.serialization.codec import tensors_to_safetensors

DTYPES = [torch.float32, torch.float16, torch.bfloat16, torch.float64, torch.int8, torch.int16, torch.int32,
          torch.int64, torch.uint8, torch.bool]  # fmt: skip


@pytest.fixture
def key(tmp_path) -> SigningKey:
    return SigningKey.load_or_create(tmp_path / "signing.key")


def through_json(value, key):
    return loads(dumps(value, key=key), key=key)


def same_tensor(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Bitwise: dtype, shape and every byte (NaN payloads and -0.0 included)."""
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    return torch.equal(a.contiguous().reshape(-1).view(torch.uint8), b.contiguous().reshape(-1).view(torch.uint8))


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape", [(2, 3), (0, 4), (), (1, 5, 5, 3)], ids=str)
def test_tensor_round_trip_is_bitwise(dtype, shape, key):
    source = (
        torch.randn(shape) * 100
        if dtype.is_floating_point
        else torch.randint(0, 2 if dtype == torch.bool else 100, shape)
    )
    tensor = source.to(dtype)
    envelope = encode(tensor, key=key)
    assert envelope["type"] == "tensor"
    assert envelope["meta"] == {"version": 1, "dtype": str(dtype).removeprefix("torch."), "shape": list(shape),
                                "device": "cpu"}  # fmt: skip
    assert same_tensor(decode(envelope, key=key), tensor)
    assert same_tensor(through_json(tensor, key), tensor)


def test_special_floats_non_contiguous_and_views(key):
    tensor = torch.tensor([float("nan"), -0.0, float("inf"), 1e-45])
    assert same_tensor(through_json(tensor, key), tensor)
    transposed = torch.arange(12, dtype=torch.float32).reshape(3, 4).t()
    assert not transposed.is_contiguous()
    assert torch.equal(through_json(transposed, key), transposed)
    base = torch.arange(10.0)
    both = {"a": base, "b": base[2:5], "a_again": base}
    back = through_json(both, key)
    assert torch.equal(back["b"], base[2:5]) and back["a"] is back["a_again"]


def test_our_safetensors_bytes_are_standard():
    tensors = {"x": torch.randn(3, 2), "flag": torch.tensor([True, False]), "half": torch.ones(2, dtype=torch.bfloat16)}
    loaded = safetensors_load(bytes(tensors_to_safetensors(tensors, {"k": "v"})))
    assert all(same_tensor(loaded[name], tensor) for name, tensor in tensors.items())


def test_latent_is_data_not_a_pickle(key):
    latent = {"samples": torch.randn(2, 4, 8, 8), "noise_mask": torch.ones(2, 1, 8, 8), "batch_index": [0, 3]}
    envelope = encode(latent, key=key)
    assert envelope["type"] == "tree" and envelope["content"]["pickles"] == {}
    back = decode(json.loads(json.dumps(envelope)), key=key)
    assert back["batch_index"] == [0, 3] and torch.equal(back["samples"], latent["samples"])


class Hook:
    """Stands for what truly is not data in a CONDITIONING (a control net, a hook object)."""

    def __init__(self, strength):
        self.strength = strength


def test_conditioning_keeps_structure_and_pickles_only_objects(key):
    conditioning = [[torch.randn(1, 77, 768), {"pooled_output": torch.randn(1, 1280), "area": (64, 64, 0, 0),
                                               "strength": 1.0, "hook": Hook(0.5), "mask": None}]]  # fmt: skip
    envelope = encode(conditioning, key=key)
    assert list(envelope["content"]["pickles"]) == ["p0"]
    back = decode(envelope, key=key)
    ((cond, extras),) = back
    assert torch.equal(cond, conditioning[0][0]) and torch.equal(
        extras["pooled_output"], conditioning[0][1]["pooled_output"]
    )
    assert extras["area"] == (64, 64, 0, 0) and isinstance(extras["area"], tuple)
    assert extras["hook"].strength == 0.5 and extras["mask"] is None


def test_numpy_and_plain_values(key):
    array = np.arange(12, dtype=np.int16).reshape(3, 4)[:, ::2]
    back = through_json(array, key)
    assert back.dtype == np.int16 and np.array_equal(back, array)
    for value in ["text", 3, 2.5, True, None, [1, "a", None], {"a": [1, {"b": 2}]}, (1, (2, 3)), {1: "int key"},
                  {"$weird": 1}, float("nan"), b"\x00\xff", {"t": (torch.ones(2),)}]:  # fmt: skip
        back = through_json(value, key)
        if isinstance(value, float) and value != value:
            assert back != back
        elif isinstance(value, dict) and "t" in value:
            assert isinstance(back["t"], tuple) and torch.equal(back["t"][0], value["t"][0])
        else:
            assert back == value and type(back) is type(value)


def test_plain_json_stays_readable(key):
    assert encode({"prompt": "a cat", "steps": [1, 2]}, key=key) == {
        "type": "json", "content": {"prompt": "a cat", "steps": [1, 2]}, "meta": {"version": 1}}  # fmt: skip


def test_signed_pickle_from_this_installation_loads(key):
    assert decode(encode(Hook(2.0), key=key), key=key).strength == 2.0


def test_unsigned_forged_and_altered_pickles_are_refused(key, tmp_path):
    envelope = encode(Hook(1.0), key=key)
    assert envelope["type"] == "pickle"
    unsigned = json.loads(json.dumps(envelope))
    del unsigned["meta"]["signatures"]
    with pytest.raises(UntrustedPickleError, match="unsigned"):
        decode(unsigned, key=key)
    other = SigningKey.load_or_create(tmp_path / "other.key")
    with pytest.raises(UntrustedPickleError, match="another installation"):
        decode(encode(Hook(1.0), key=other), key=key)
    forged = json.loads(json.dumps(envelope))
    import base64

    import cloudpickle

    forged["content"] = base64.b64encode(cloudpickle.dumps(Hook(666.0))).decode()
    with pytest.raises(UntrustedPickleError, match="altered"):
        decode(forged, key=key)
    assert decode(forged, key=key, trust=True).strength == 666.0  # the documented escape hatch


def test_key_file_is_private_and_stable(tmp_path):
    path = tmp_path / "deep" / "signing.key"
    first = SigningKey.load_or_create(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert SigningKey.load_or_create(path) == first


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda e: e.update(content=e["content"][:-7]), "not valid base64|not a valid safetensors"),
        (lambda e: e.update(content="!!!" + e["content"]), "not valid base64"),
        (lambda e: e["meta"].update(shape=[9, 9]), "declares a float32 tensor of shape \\[9, 9\\]"),
        (lambda e: e["meta"].update(dtype="int8"), "declares a int8 tensor"),
        (lambda e: e.update(type="mystery"), "unknown envelope type 'mystery'"),
        (lambda e: e["meta"].update(version=99), "version 99 is not supported"),
        (lambda e: e.pop("meta"), "an envelope is a JSON object"),
        (lambda e: e.update(content=12), "expected a base64 string"),
    ],
)
def test_bad_envelopes_are_refused_with_the_reason(mutate, message, key):
    envelope = encode(torch.ones(2, 3), key=key)
    mutate(envelope)
    with pytest.raises(SerializationError, match=message):
        decode(envelope, key=key)


def test_limits_refuse_oversized_and_deep_input(key):
    envelope = encode(torch.ones(100, 100), key=key)
    with pytest.raises(SerializationError, match="over the limit"):
        decode(envelope, key=key, limits=Limits(max_base64_chars=1000))
    deep = {"type": "tree", "meta": {"version": 1}, "content": {"skeleton": [[[[[[1]]]]]]}}
    with pytest.raises(SerializationError, match="nested too deep"):
        decode(deep, key=key, limits=Limits(max_depth=3))
    dangling = {"type": "tree", "meta": {"version": 1}, "content": {"skeleton": {"$t": "t7"}}}
    with pytest.raises(SerializationError, match="refers to tensor 't7'"):
        decode(dangling, key=key)
    with pytest.raises(SerializationError, match="not a JSON envelope"):
        loads("{", key=key)


def test_models_that_cannot_be_pickled_say_so(key):
    import threading

    with pytest.raises(SerializationError, match=r"value\['lock'\]: a lock can be neither stored as data nor pickled"):
        encode({"lock": threading.Lock()}, key=key)


# --- property tests -----------------------------------------------------------------------------------------------

shapes = st.lists(st.integers(0, 4), min_size=0, max_size=4).map(tuple)
dtypes = st.sampled_from(DTYPES)


@st.composite
def tensors(draw):
    dtype, shape = draw(dtypes), draw(shapes)
    count = int(np.prod(shape)) if shape else 1
    size = count * torch.empty((), dtype=dtype).element_size()
    data = np.frombuffer(draw(st.binary(min_size=size, max_size=size)), dtype=np.uint8)
    tensor = torch.from_numpy(data.copy()).view(dtype).reshape(shape) if count else torch.empty(shape, dtype=dtype)
    if dtype == torch.bool:
        tensor = tensor.view(torch.uint8).bool()
    return tensor


scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=False), st.text(max_size=8)
)
values = st.recursive(
    st.one_of(scalars, tensors()),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.tuples(inner, inner),
        st.dictionaries(st.text(max_size=5), inner, max_size=4),
    ),
    max_leaves=12,
)


def equal(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and same_tensor(a, b)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return type(b) is dict and a.keys() == b.keys() and all(equal(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values)
def test_any_structure_round_trips_through_json(value):
    key = SigningKey(b"k" * 32)
    assert equal(loads(dumps(value, key=key), key=key), value)


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=200), st.sampled_from(["tensor", "ndarray", "tree", "pickle", "json"]))
def test_garbage_content_raises_only_documented_errors(blob, kind):
    import base64

    envelope = {"type": kind, "meta": {"version": 1}, "content": base64.b64encode(blob).decode()}
    if kind == "tree":
        envelope["content"] = {"skeleton": {"$t": "t0"}, "tensors": envelope["content"]}
    with contextlib.suppress(SerializationError):
        decode(envelope, key=SigningKey(b"k" * 32))


def test_digest_counts_data_and_tensors_by_content_and_live_objects_by_type():
    from discomfort.serialization.codec import digest

    mask = torch.zeros(1, 1, 64, 64)
    moved = mask.clone()
    moved[0, 0, 32, 31] = 1.0
    mask[0, 0, 32, 32] = 1.0
    assert repr(mask) == repr(moved)  # what the old fingerprint compared: torch elides the middle
    latent = {"samples": torch.zeros(1, 4, 8, 8), "noise_mask": mask}
    assert digest(latent) == digest({"samples": torch.zeros(1, 4, 8, 8), "noise_mask": mask.clone()})
    assert digest(latent) != digest({**latent, "noise_mask": moved})
    assert digest(torch.zeros(2, dtype=torch.float16)) != digest(torch.zeros(2, dtype=torch.bfloat16))
    assert digest([1, "a", None]) != digest([1, "a", 0]) and digest((1, 2)) != digest([1, 2])

    class Model:  # stands for a MODEL: made anew, at another address, after every restart
        pass

    assert digest({"model": Model(), "steps": 4}) == digest({"model": Model(), "steps": 4})
    assert digest({"model": Model()}) != digest({"model": object()})
