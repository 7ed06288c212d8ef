"""Discomfort: real loops for ComfyUI.

ComfyUI loads this file from custom_nodes/ and reads NODE_CLASS_MAPPINGS; Python code imports it as `discomfort`.
Either way nothing of ComfyUI is imported here, so `import discomfort` works before ComfyUI is booted.
"""

from .api import RunResult, Runtime, Session
from .errors import DiscomfortError, LoopError, PortError, WorkflowError
from .executor.carry import DiscomfortCarryIn, DiscomfortCarryOut
from .executor.checks import DiscomfortCheck
from .executor.loop_node import DiscomfortLoop, DiscomfortWorkflowLoop
from .executor.outcome import DiscomfortRaise, DiscomfortReplay
from .executor.server_hook import install as _install_server_hook
from .nodes.choose import DiscomfortChoose
from .nodes.compare import DiscomfortImageDifference
from .nodes.describe import DiscomfortImageDescriber
from .nodes.folder import DiscomfortFolderImageLoader, DiscomfortFolderLoop
from .nodes.kept import DiscomfortLoadKept
from .nodes.save import DiscomfortSaveImage
from .nodes.video import DiscomfortJoinChunks, DiscomfortLastFrames
from .ports.node import DiscomfortPort

NODE_CLASS_MAPPINGS = {
    "DiscomfortPort": DiscomfortPort,
    "DiscomfortLoop": DiscomfortLoop,
    "DiscomfortWorkflowLoop": DiscomfortWorkflowLoop,
    "DiscomfortFolderLoop": DiscomfortFolderLoop,
    "DiscomfortFolderImageLoader": DiscomfortFolderImageLoader,
    "DiscomfortSaveImage": DiscomfortSaveImage,
    "DiscomfortImageDifference": DiscomfortImageDifference,
    "DiscomfortChoose": DiscomfortChoose,
    "DiscomfortLastFrames": DiscomfortLastFrames,
    "DiscomfortImageDescriber": DiscomfortImageDescriber,
    "DiscomfortJoinChunks": DiscomfortJoinChunks,
    "DiscomfortLoadKept": DiscomfortLoadKept,
    "DiscomfortCarryIn": DiscomfortCarryIn,
    "DiscomfortCarryOut": DiscomfortCarryOut,
    "DiscomfortCheck": DiscomfortCheck,
    "DiscomfortReplay": DiscomfortReplay,
    "DiscomfortRaise": DiscomfortRaise,
}

NODE_DISPLAY_NAME_MAPPINGS = {
    "DiscomfortPort": "Discomfort Port",
    "DiscomfortLoop": "Discomfort Loop",
    "DiscomfortWorkflowLoop": "Discomfort Workflow Loop",
    "DiscomfortFolderLoop": "Discomfort Folder Loop",
    "DiscomfortFolderImageLoader": "Discomfort Folder Image Loader",
    "DiscomfortSaveImage": "Discomfort Save Image (by name)",
    "DiscomfortImageDifference": "Discomfort Image Difference",
    "DiscomfortChoose": "Discomfort Choose",
    "DiscomfortLastFrames": "Discomfort Last Frames",
    "DiscomfortImageDescriber": "Discomfort Image Describer",
    "DiscomfortJoinChunks": "Discomfort Join Chunks",
    "DiscomfortLoadKept": "Discomfort Load Kept",
    "DiscomfortCarryIn": "Discomfort Carry In (internal)",
    "DiscomfortCarryOut": "Discomfort Carry Out (internal)",
    "DiscomfortCheck": "Discomfort loop check (internal)",
    "DiscomfortReplay": "Discomfort loop output (internal)",
    "DiscomfortRaise": "Discomfort loop failure (internal)",
}

# The frontend extension (web/*.js): port badges, typed sockets, body highlight, the iteration counter, loop actions.
WEB_DIRECTORY = "./web"

# Inside a running ComfyUI server, prepare every queued prompt that holds a loop; elsewhere this does nothing.
_install_server_hook()

__all__ = [
    "NODE_CLASS_MAPPINGS",
    "NODE_DISPLAY_NAME_MAPPINGS",
    "WEB_DIRECTORY",
    "DiscomfortError",
    "LoopError",
    "PortError",
    "RunResult",
    "Runtime",
    "Session",
    "WorkflowError",
]
