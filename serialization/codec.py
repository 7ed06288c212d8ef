"""The value envelope: any value ComfyUI passes between nodes, as JSON or as files.

Format (version 1), a JSON object:

    {"type": "json" | "tensor" | "ndarray" | "tree" | "pickle", "content": ..., "meta": {"version": 1, ...}}

- json: plain data (str, int, finite float, bool, None, lists, dicts with string keys); `content` is the value.
- tensor: one torch tensor; `content` is base64 of a safetensors file holding it as "value"; `meta` has its
  dtype, shape and original device. Bitwise: safetensors stores the raw bytes.
- ndarray: the same for one numpy array.
- tree: anything built of the above and of tuples, non-finite floats, bytes, dicts with other keys, and opaque
  objects, e.g. LATENT (`samples` tensor, `batch_index` list) or CONDITIONING (`[[tensor, {"pooled_output":
  tensor, ...}]]`). `content` is `{"skeleton", "tensors", "arrays", "pickles"}`: the skeleton is JSON in which
  `{"$t": name}`, `{"$a": name}` and `{"$p": name}` stand for a tensor, an array or a pickle, and `{"$tuple": [...]}`,
  `{"$float": "nan"}`, `{"$bytes": b64}` and `{"$dict": [[key, value], ...]}` for what JSON lacks; tensors and
  arrays travel in one safetensors file each (base64), opaque objects as signed pickles.
- pickle: one opaque object, cloudpickled; `meta.signatures` holds its HMAC-SHA256 under this installation's key.

Inside a process values pass by reference; this is only for when they leave it. The same parts are written as
raw files by the disk store (`stores.py`), with no base64.
"""

from __future__ import annotations

import json
import math
import secrets
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

try:  # SIMD base64, several times faster on large tensors; the standard library's when it is not installed
    import pybase64 as base64
except ImportError:
    import base64

from ..errors import SerializationError, UntrustedPickleError
from .signing import SigningKey

VERSION = 1
TYPES = ("json", "tensor", "ndarray", "tree", "pickle")


@dataclass(frozen=True)
class Limits:
    """Bounds on untrusted input, checked before anything is decoded."""

    max_base64_chars: int = 8 * 1024**3  # a single blob: 6 GiB of binary
    max_depth: int = 200
    max_nodes: int = 10_000_000


@dataclass
class Parts:
    """A value split into a JSON skeleton and binary members, before either goes to JSON or to files."""

    type: str
    meta: dict[str, Any]
    skeleton: Any = None
    tensors: dict[str, Any] = field(default_factory=dict)
    arrays: dict[str, Any] = field(default_factory=dict)
    pickles: dict[str, bytes] = field(default_factory=dict)


# --- value <-> parts ----------------------------------------------------------------------------------------------


def split(value: Any, key: SigningKey | None = None) -> Parts:
    """Split a value into parts; pickles are signed with `key` (default: this installation's)."""
    meta: dict[str, Any] = {"version": VERSION}
    if is_tensor(value):
        meta.update(dtype=str(value.dtype).removeprefix("torch."), shape=list(value.shape), device=str(value.device))
        return Parts("tensor", meta, tensors={"value": value})
    if is_ndarray(value) and value.dtype != object:
        meta.update(dtype=str(value.dtype), shape=list(value.shape))
        return Parts("ndarray", meta, arrays={"value": value})
    if is_plain_json(value):
        return Parts("json", meta, skeleton=value)
    parts = Parts("tree", meta)
    walker = _Splitter(parts)
    parts.skeleton = walker.walk(value, "value")
    if isinstance(parts.skeleton, dict) and parts.skeleton.keys() == {"$p"}:
        parts.type = "pickle"  # the whole value is opaque
    if parts.pickles:
        key = key or SigningKey.load_or_create()
        meta["key_id"] = key.key_id
        meta["signatures"] = {name: key.sign(data) for name, data in parts.pickles.items()}
    return parts


def join(parts: Parts, *, key: SigningKey | None = None, trust: bool = False, limits: Limits = Limits()) -> Any:
    """Rebuild a value from parts, refusing pickles not signed by `key` unless `trust` is set."""
    if parts.type not in TYPES:
        raise SerializationError(f"unknown envelope type {parts.type!r} (known: {', '.join(TYPES)})")
    version = parts.meta.get("version")
    if version != VERSION:
        raise SerializationError(f"envelope version {version!r} is not supported (this is version {VERSION})")
    if parts.type == "tensor":
        return _declared_tensor(parts)
    if parts.type == "ndarray":
        return _declared_array(parts)
    if parts.type == "json":
        return parts.skeleton
    if parts.pickles and not trust:
        _verify_pickles(parts, key or SigningKey.load_or_create())
    return _Joiner(parts, limits).walk(parts.skeleton, "value", 0)


def digest(value: Any) -> bytes:
    """A digest of what a value holds, to tell whether two runs started from the same values.

    Data and tensors count by content, as the envelope would store them (a LATENT by its keys, its tensors' dtype,
    shape and bytes). Objects the envelope would pickle (a MODEL, a CLIP, a VAE, anything else held in memory)
    count by their type only: they cannot be compared across processes, and a new one is made at every restart.
    """
    import hashlib

    parts = Parts("tree", {})
    skeleton = _Splitter(parts, opaque=lambda item: f"{type(item).__module__}.{type(item).__qualname__}").walk(
        value, "value"
    )
    hashed = hashlib.blake2b(json.dumps(skeleton, sort_keys=True).encode(), digest_size=20)
    for name, tensor in sorted(parts.tensors.items()):
        hashed.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        hashed.update(memoryview(_tensor_bytes(tensor)))
    for name, array in sorted(parts.arrays.items()):
        hashed.update(f"{name}:{array.dtype}:{array.shape}".encode())
        hashed.update(memoryview(array.tobytes()))
    return hashed.digest()


def _tensor_bytes(tensor: Any) -> Any:
    import torch

    return tensor.detach().to("cpu").contiguous().reshape(-1).view(torch.uint8).numpy()


class _Splitter:
    def __init__(self, parts: Parts, opaque: Any = None):
        self.parts = parts
        self.seen: dict[int, str] = {}  # the same tensor object twice is stored once
        self.opaque = opaque  # None: opaque objects are pickled; else a function naming them instead

    def walk(self, value: Any, path: str) -> Any:
        if value is None or isinstance(value, (bool, int, str)):
            return value
        if isinstance(value, float):
            return value if math.isfinite(value) else {"$float": repr(value)}
        if is_tensor(value):
            return {"$t": self._member(value, self.parts.tensors, "t")}
        if is_ndarray(value) and value.dtype != object:
            return {"$a": self._member(value, self.parts.arrays, "a")}
        if isinstance(value, tuple) and type(value) is tuple:
            return {"$tuple": [self.walk(item, f"{path}[{i}]") for i, item in enumerate(value)]}
        if type(value) is list:
            return [self.walk(item, f"{path}[{i}]") for i, item in enumerate(value)]
        if type(value) is dict:
            if all(isinstance(k, str) and not k.startswith("$") for k in value):
                return {k: self.walk(v, f"{path}[{k!r}]") for k, v in value.items()}
            return {"$dict": [[self.walk(k, f"{path}.key"), self.walk(v, f"{path}[{k!r}]")] for k, v in value.items()]}
        if isinstance(value, (bytes, bytearray)) and type(value) in (bytes, bytearray):
            return {"$bytes": base64.b64encode(bytes(value)).decode("ascii")}
        if self.opaque is not None:
            return {"$o": self.opaque(value)}
        return {"$p": self._pickle(value, path)}

    def _member(self, value: Any, members: dict[str, Any], prefix: str) -> str:
        name = self.seen.get(id(value))
        if name is None:
            name = self.seen[id(value)] = f"{prefix}{len(members)}"
            members[name] = value
        return name

    def _pickle(self, value: Any, path: str) -> str:
        import cloudpickle

        try:
            data = cloudpickle.dumps(value)
        except Exception as error:
            raise SerializationError(
                f"{path}: a {type(value).__name__} can be neither stored as data nor pickled ({error}); "
                "values like this (models, CLIP, VAE) can only pass by reference, inside one process"
            ) from error
        name = f"p{len(self.parts.pickles)}"
        self.parts.pickles[name] = data
        return name


class _Joiner:
    def __init__(self, parts: Parts, limits: Limits):
        self.parts = parts
        self.limits = limits
        self.nodes = 0
        self.unpickled: dict[str, Any] = {}

    def walk(self, node: Any, path: str, depth: int) -> Any:
        self.nodes += 1
        if depth > self.limits.max_depth or self.nodes > self.limits.max_nodes:
            raise SerializationError(f"{path}: the envelope is nested too deep or too large")
        if isinstance(node, list):
            return [self.walk(item, f"{path}[{i}]", depth + 1) for i, item in enumerate(node)]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            ((marker, inner),) = node.items()
            if marker == "$t":
                return self._member(self.parts.tensors, inner, path, "tensor")
            if marker == "$a":
                return self._member(self.parts.arrays, inner, path, "array")
            if marker == "$p":
                return self._unpickle(inner, path)
            if marker == "$tuple":
                return tuple(self.walk(item, f"{path}[{i}]", depth + 1) for i, item in enumerate(inner))
            if marker == "$float":
                if inner not in ("nan", "inf", "-inf"):
                    raise SerializationError(f"{path}: {inner!r} is not a non-finite float")
                return float(inner)
            if marker == "$bytes":
                return base64.b64decode(inner, validate=True)
            if marker == "$dict":
                return {
                    _hashable(self.walk(k, f"{path}.key", depth + 1), path): self.walk(v, f"{path}[{k!r}]", depth + 1)
                    for k, v in inner
                }
        return {k: self.walk(v, f"{path}[{k!r}]", depth + 1) for k, v in node.items()}

    def _member(self, members: Mapping[str, Any], name: Any, path: str, kind: str) -> Any:
        if not isinstance(name, str) or name not in members:
            raise SerializationError(f"{path}: the envelope refers to {kind} {name!r}, which it does not hold")
        return members[name]

    def _unpickle(self, name: Any, path: str) -> Any:
        import cloudpickle

        if name not in self.unpickled:
            self.unpickled[name] = cloudpickle.loads(self._member(self.parts.pickles, name, path, "pickle"))
        return self.unpickled[name]


def _verify_pickles(parts: Parts, key: SigningKey) -> None:
    signatures = parts.meta.get("signatures") or {}
    for name, data in parts.pickles.items():
        signature = signatures.get(name)
        if not isinstance(signature, str):
            raise UntrustedPickleError(
                f"pickle {name!r} is unsigned; a pickle is code, so only pickles signed by this installation are "
                "loaded (pass trust=True only for data you made yourself)"
            )
        if parts.meta.get("key_id") != key.key_id:
            raise UntrustedPickleError(f"pickle {name!r} was signed by another installation; it was not loaded")
        if not key.verify(data, signature):
            raise UntrustedPickleError(f"pickle {name!r} does not match its signature: it was altered; not loaded")


def _declared_tensor(parts: Parts) -> Any:
    tensor = parts.tensors.get("value")
    if not is_tensor(tensor):
        raise SerializationError("a tensor envelope holds no tensor named 'value'")
    dtype, shape = str(tensor.dtype).removeprefix("torch."), list(tensor.shape)
    if (dtype, shape) != (parts.meta.get("dtype"), parts.meta.get("shape")):
        raise SerializationError(
            f"the envelope declares a {parts.meta.get('dtype')} tensor of shape {parts.meta.get('shape')} "
            f"but holds a {dtype} tensor of shape {shape}"
        )
    return tensor


def _declared_array(parts: Parts) -> Any:
    array = parts.arrays.get("value")
    if not is_ndarray(array):
        raise SerializationError("an ndarray envelope holds no array named 'value'")
    if (str(array.dtype), list(array.shape)) != (parts.meta.get("dtype"), parts.meta.get("shape")):
        raise SerializationError(
            f"the envelope declares a {parts.meta.get('dtype')} array of shape {parts.meta.get('shape')} "
            f"but holds a {array.dtype} array of shape {list(array.shape)}"
        )
    return array


def _hashable(key: Any, path: str) -> Any:
    if isinstance(key, list):
        raise SerializationError(f"{path}: a list cannot be a dict key")
    return key


def is_plain_json(value: Any, depth: int = 0) -> bool:
    if depth > 100:
        return False
    if value is None or type(value) in (bool, int, str):
        return True
    if type(value) is float:
        return math.isfinite(value)
    if type(value) is list:
        return all(is_plain_json(item, depth + 1) for item in value)
    if type(value) is dict:
        return all(
            isinstance(k, str) and not k.startswith("$") and is_plain_json(v, depth + 1) for k, v in value.items()
        )
    return False


def is_tensor(value: Any) -> bool:
    return type(value).__module__.startswith("torch") and hasattr(value, "dtype") and hasattr(value, "untyped_storage")


def is_ndarray(value: Any) -> bool:
    return type(value).__module__ == "numpy" and type(value).__name__ == "ndarray"


# --- parts <-> JSON envelope --------------------------------------------------------------------------------------


def encode(value: Any, *, key: SigningKey | None = None) -> dict[str, Any]:
    """A value as a JSON-able envelope (see the module docstring). Pickles are signed with `key`."""
    parts = split(value, key)
    if parts.type == "json":
        content: Any = parts.skeleton
    elif parts.type == "tensor":
        content = _b64(tensors_to_safetensors(parts.tensors))
    elif parts.type == "ndarray":
        content = _b64(_arrays_to_safetensors(parts.arrays))
    elif parts.type == "pickle":
        content = _b64(parts.pickles["p0"])
    else:
        content = {
            "skeleton": parts.skeleton,
            "tensors": _b64(tensors_to_safetensors(parts.tensors)) if parts.tensors else None,
            "arrays": _b64(_arrays_to_safetensors(parts.arrays)) if parts.arrays else None,
            "pickles": {name: _b64(data) for name, data in parts.pickles.items()},
        }
    return {"type": parts.type, "content": content, "meta": parts.meta}


def decode(envelope: Any, *, key: SigningKey | None = None, trust: bool = False, limits: Limits = Limits()) -> Any:
    """The value an envelope holds. Raises `SerializationError` (or `UntrustedPickleError`) naming the problem."""
    if not isinstance(envelope, Mapping) or not {"type", "content", "meta"} <= set(envelope):
        raise SerializationError("an envelope is a JSON object with 'type', 'content' and 'meta'")
    kind, content, meta = envelope["type"], envelope["content"], envelope["meta"]
    if not isinstance(meta, Mapping):
        raise SerializationError("the envelope's 'meta' must be an object")
    parts = Parts(str(kind), dict(meta))
    if kind == "json":
        parts.skeleton = content
    elif kind == "tensor":
        parts.tensors = _load_tensors(_unb64(content, "content", limits), "content")
    elif kind == "ndarray":
        parts.arrays = _load_arrays(_unb64(content, "content", limits), "content")
    elif kind == "pickle":
        parts.skeleton = {"$p": "p0"}
        parts.pickles = {"p0": _unb64(content, "content", limits)}
    elif kind == "tree":
        if not isinstance(content, Mapping) or "skeleton" not in content:
            raise SerializationError("a tree envelope's content is an object with a 'skeleton'")
        parts.skeleton = content["skeleton"]
        if content.get("tensors"):
            parts.tensors = _load_tensors(_unb64(content["tensors"], "content.tensors", limits), "content.tensors")
        if content.get("arrays"):
            parts.arrays = _load_arrays(_unb64(content["arrays"], "content.arrays", limits), "content.arrays")
        pickles = content.get("pickles") or {}
        if not isinstance(pickles, Mapping):
            raise SerializationError("content.pickles must be an object")
        parts.pickles = {name: _unb64(data, f"content.pickles.{name}", limits) for name, data in pickles.items()}
    return join(parts, key=key, trust=trust, limits=limits)


def dumps(value: Any, *, key: SigningKey | None = None) -> str:
    """The envelope as JSON text.

    Base64 needs no escaping, so payloads are spliced into the text rather than scanned by the JSON encoder,
    which took longer than the base64 itself.
    """
    envelope = encode(value, key=key)
    blobs: dict[str, str] = {}

    def stash(text: str | None) -> str | None:
        if text is None:
            return None
        marker = f"@blob-{secrets.token_hex(8)}@"
        blobs[marker] = text
        return marker

    if envelope["type"] in ("tensor", "ndarray", "pickle"):
        envelope["content"] = stash(envelope["content"])
    elif envelope["type"] == "tree":
        content = envelope["content"]
        content["tensors"], content["arrays"] = stash(content["tensors"]), stash(content["arrays"])
        content["pickles"] = {name: stash(data) for name, data in content["pickles"].items()}
    text = json.dumps(envelope, separators=(",", ":"), allow_nan=False)
    for marker, blob in blobs.items():
        text = text.replace(marker, blob, 1)
    return text


def loads(text: str | bytes, *, key: SigningKey | None = None, trust: bool = False, limits: Limits = Limits()) -> Any:
    if len(text) > limits.max_base64_chars * 2:
        raise SerializationError(f"the envelope is {len(text)} characters, over the limit")
    try:
        envelope = json.loads(text)
    except json.JSONDecodeError as error:
        raise SerializationError(f"not a JSON envelope: {error}") from None
    return decode(envelope, key=key, trust=trust, limits=limits)


# --- safetensors bytes ----------------------------------------------------------------------------------------------

_SAFETENSORS_DTYPES = {
    "float64": "F64", "float32": "F32", "float16": "F16", "bfloat16": "BF16", "int64": "I64", "int32": "I32",
    "int16": "I16", "int8": "I8", "uint8": "U8", "bool": "BOOL", "uint16": "U16", "uint32": "U32", "uint64": "U64",
    "float8_e4m3fn": "F8_E4M3", "float8_e5m2": "F8_E5M2",
}  # fmt: skip


def tensors_to_safetensors(tensors: Mapping[str, Any], metadata: Mapping[str, str] | None = None) -> Any:
    """Tensors as the bytes of a safetensors file (a numpy uint8 buffer), written with one copy of the data.

    `safetensors.torch.save` copies each tensor twice on its way to a bytes object; for the JSON envelope, whose
    base64 step costs about as much again, that was a third of the time. The layout is safetensors' own (8-byte
    header length, JSON header, raw little-endian data) and `safetensors.torch.load` reads it back, checking it.
    """
    import numpy as np
    import torch

    header: dict[str, Any] = {"__metadata__": dict(metadata)} if metadata else {}
    flat = []
    offset = 0
    for name, tensor in tensors.items():
        dtype = str(tensor.dtype).removeprefix("torch.")
        if dtype not in _SAFETENSORS_DTYPES:
            raise SerializationError(f"tensor {name!r}: safetensors cannot hold dtype {dtype}")
        data = tensor.detach().to("cpu").contiguous().reshape(-1).view(torch.uint8).numpy()
        header[name] = {"dtype": _SAFETENSORS_DTYPES[dtype], "shape": list(tensor.shape),
                        "data_offsets": [offset, offset + data.nbytes]}  # fmt: skip
        flat.append(data)
        offset += data.nbytes
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-(8 + len(text)) % 8)  # data starts 8-byte aligned, as safetensors writes it
    start = 8 + len(text)
    buffer = np.empty(start + offset, dtype=np.uint8)
    buffer[:8] = np.frombuffer(struct.pack("<Q", len(text)), dtype=np.uint8)
    buffer[8:start] = np.frombuffer(text, dtype=np.uint8)
    for data in flat:
        buffer[start : start + data.nbytes] = data
        start += data.nbytes
    return buffer


def _arrays_to_safetensors(arrays: Mapping[str, Any]) -> bytes:
    from safetensors.numpy import save

    return save({name: _contiguous(array) for name, array in arrays.items()})


def _contiguous(array: Any) -> Any:
    import numpy as np

    return np.ascontiguousarray(array)


def _load_tensors(data: bytes, where: str) -> dict[str, Any]:
    from safetensors.torch import load

    try:
        return load(data)
    except Exception as error:
        raise SerializationError(f"{where}: not a valid safetensors payload ({error})") from None


def _load_arrays(data: bytes, where: str) -> dict[str, Any]:
    from safetensors.numpy import load

    try:
        return load(data)
    except Exception as error:
        raise SerializationError(f"{where}: not a valid safetensors payload ({error})") from None


def _b64(data: Any) -> str:
    if hasattr(base64, "b64encode_as_string"):  # pybase64: no intermediate bytes object
        return base64.b64encode_as_string(data)
    return base64.b64encode(data).decode("ascii")


def _unb64(text: Any, where: str, limits: Limits) -> bytes:
    if not isinstance(text, str):
        raise SerializationError(f"{where}: expected a base64 string, got {type(text).__name__}")
    if len(text) > limits.max_base64_chars:
        raise SerializationError(
            f"{where}: {len(text)} base64 characters is over the limit of {limits.max_base64_chars}"
        )
    try:
        return base64.b64decode(text, validate=True)
    except ValueError as error:
        raise SerializationError(f"{where}: not valid base64 (truncated or corrupted): {error}") from None
