"""Values leaving memory: the typed envelope, stores, checkpoints. Imports nothing of ComfyUI."""

from .checkpoint import Checkpoint, CheckpointError, CheckpointLocked, CheckpointMismatch, CheckpointState
from .codec import Limits, decode, dumps, encode, loads
from .signing import SigningKey, default_key_path
from .stores import STORAGE_MODES, DiskList, DiskStore, MemoryStore, SpillingList, make_list

__all__ = [
    "STORAGE_MODES",
    "Checkpoint",
    "CheckpointError",
    "CheckpointLocked",
    "CheckpointMismatch",
    "CheckpointState",
    "DiskList",
    "DiskStore",
    "Limits",
    "MemoryStore",
    "SigningKey",
    "SpillingList",
    "decode",
    "default_key_path",
    "dumps",
    "encode",
    "loads",
    "make_list",
]
