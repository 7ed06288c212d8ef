"""Nodes for Discomfort's tests only: they count their runs, fail or stall on request, and do small integer math.

Runs are counted by appending a line to a file named by a widget, so the count is visible from the test process
whether ComfyUI runs in it or in a server subprocess.
"""

from __future__ import annotations

import os
import time

import comfy.model_management


class AnyType(str):
    def __ne__(self, other: object) -> bool:
        return False


ANY = AnyType("*")


def _log(path: str, line: str) -> None:
    if path:
        with open(path, "a") as log:
            log.write(line + "\n")


class DiscomfortTestCount:
    """Passes a value on and appends `label` to the log file each time it runs."""

    CATEGORY = "Discomfort/testing"
    RETURN_TYPES = (ANY,)
    FUNCTION = "count"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": (ANY, {}), "log": ("STRING", {"default": ""}), "label": ("STRING", {})}}

    def count(self, value, log, label):
        _log(log, label)
        return (value,)


class DiscomfortTestLoader:
    """A loader stand-in: makes a 1x8x8x3 IMAGE of one gray level, logging every run (a model load would)."""

    CATEGORY = "Discomfort/testing"
    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"level": ("FLOAT", {"default": 0.5}), "log": ("STRING", {"default": ""})}}

    def load(self, level, log):
        import torch

        _log(log, "load")
        return (torch.full((1, 8, 8, 3), float(level)),)


class DiscomfortTestAdd:
    CATEGORY = "Discomfort/testing"
    RETURN_TYPES = ("INT",)
    FUNCTION = "add"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"a": ("INT", {"default": 0, "min": -(2**31), "max": 2**31}),
                             "b": ("INT", {"default": 1, "min": -(2**31), "max": 2**31})}}  # fmt: skip

    def add(self, a, b):
        return (a + b,)


class DiscomfortTestAtLeast:
    CATEGORY = "Discomfort/testing"
    RETURN_TYPES = ("BOOLEAN",)
    FUNCTION = "compare"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("INT", {"default": 0, "min": -(2**31), "max": 2**31}),
                             "threshold": ("INT", {"default": 0, "min": -(2**31), "max": 2**31})}}  # fmt: skip

    def compare(self, value, threshold):
        return (value >= threshold,)


class DiscomfortTestFailAt:
    """Passes a value on, but raises ValueError when `index` equals `fail_at` (and, if `only_if_exists` names a
    file, only while that file exists: a test removes it to let the same body succeed)."""

    CATEGORY = "Discomfort/testing"
    RETURN_TYPES = (ANY,)
    FUNCTION = "check"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": (ANY, {}), "index": ("INT", {"default": 0, "min": 0, "max": 2**31}),
                             "fail_at": ("INT", {"default": 0, "min": -1, "max": 2**31})},
                "optional": {"only_if_exists": ("STRING", {"default": ""})}}  # fmt: skip

    def check(self, value, index, fail_at, only_if_exists=""):
        if index == fail_at and (not only_if_exists or os.path.exists(only_if_exists)):
            raise ValueError(f"planted failure at index {index}")
        return (value,)


class DiscomfortTestStall:
    """Passes a value on after `seconds`, logging its start, and stops at once when interrupted."""

    CATEGORY = "Discomfort/testing"
    RETURN_TYPES = (ANY,)
    FUNCTION = "stall"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": (ANY, {}), "seconds": ("FLOAT", {"default": 0.1}),
                             "log": ("STRING", {"default": ""})}}  # fmt: skip

    def stall(self, value, seconds, log):
        _log(log, "stall")
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            comfy.model_management.throw_exception_if_processing_interrupted()
            time.sleep(0.01)
        return (value,)


class LiveObject:
    """Stands for a MODEL, a CLIP, a VAE: an object held in memory, new in every process."""


class DiscomfortTestObject:
    """Makes a new LiveObject at every run, as a loader does after a restart."""

    CATEGORY = "Discomfort/testing"
    RETURN_TYPES = ("DISCOMFORT_TEST_OBJECT",)
    FUNCTION = "make"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {}}

    @classmethod
    def IS_CHANGED(cls, **_):
        return float("nan")

    def make(self):
        return (LiveObject(),)


CAPTURED: dict[str, list] = {}


class DiscomfortTestCapture:
    """An output node that keeps every value it receives in CAPTURED[label] (in-process tests read it)."""

    CATEGORY = "Discomfort/testing"
    RETURN_TYPES = ()
    OUTPUT_NODE = True
    FUNCTION = "capture"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": (ANY, {}), "label": ("STRING", {})}}

    @classmethod
    def IS_CHANGED(cls, **_):
        return float("nan")

    def capture(self, value, label):
        CAPTURED.setdefault(label, []).append(value)
        return {}


class DiscomfortTestProcessState:
    """Passes a value on, keeping in CAPTURED[label] the process-wide state it ran under: the preview method, the
    RAM-release hook (0.33+), and the usage source its prompt came with (0.33+)."""

    CATEGORY = "Discomfort/testing"
    RETURN_TYPES = (ANY,)
    FUNCTION = "look"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": (ANY, {}), "label": ("STRING", {"default": "state"})},
                "hidden": {"comfy_usage_source": "COMFY_USAGE_SOURCE"}}  # fmt: skip

    @classmethod
    def IS_CHANGED(cls, **_):
        return float("nan")

    def look(self, value, label, comfy_usage_source=None):
        from comfy.cli_args import args

        try:
            import comfy.memory_management as memory
        except ImportError:
            memory = None
        CAPTURED.setdefault(label, []).append({
            "preview_method": getattr(args.preview_method, "value", args.preview_method),
            "ram_release": getattr(memory, "extra_ram_release_callback", None),
            "usage_source": comfy_usage_source,
        })  # fmt: skip
        return (value,)


NODE_CLASS_MAPPINGS = {
    cls.__name__: cls
    for cls in (DiscomfortTestCount, DiscomfortTestLoader, DiscomfortTestAdd, DiscomfortTestAtLeast,
                DiscomfortTestFailAt, DiscomfortTestStall, DiscomfortTestCapture, DiscomfortTestObject,
                DiscomfortTestProcessState)
}  # fmt: skip
