"""Discomfort: real loops for ComfyUI.

ComfyUI loads this file from custom_nodes/ and reads NODE_CLASS_MAPPINGS; Python code imports it as `discomfort`.
Either way nothing of ComfyUI is imported here, so `import discomfort` works before ComfyUI is booted.
"""

from .errors import DiscomfortError, PortError, WorkflowError
from .ports.node import DiscomfortPort

NODE_CLASS_MAPPINGS = {
    "DiscomfortPort": DiscomfortPort,
}

NODE_DISPLAY_NAME_MAPPINGS = {
    "DiscomfortPort": "Discomfort Port",
}

__all__ = [
    "NODE_CLASS_MAPPINGS",
    "NODE_DISPLAY_NAME_MAPPINGS",
    "DiscomfortError",
    "PortError",
    "WorkflowError",
]
