"""Signing pickled payloads with a per-installation secret, so that only pickles this installation made are loaded.

A pickle is code: loading one runs whatever its author wrote. Every pickle Discomfort writes carries an
HMAC-SHA256 of its bytes under a 32-byte secret created on first use (mode 0600). Decoding refuses a pickle whose
signature is missing, made with another key, or does not match its bytes.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import SerializationError

KEY_FILE_ENV = "DISCOMFORT_KEY_FILE"
KEY_BYTES = 32


def default_key_path() -> Path:
    """$DISCOMFORT_KEY_FILE; else, inside ComfyUI, its user directory; else the user's config directory."""
    if os.environ.get(KEY_FILE_ENV):
        return Path(os.environ[KEY_FILE_ENV]).expanduser()
    folder_paths = sys.modules.get("folder_paths")  # ComfyUI's module, only if ComfyUI already loaded it
    if folder_paths is not None and hasattr(folder_paths, "get_user_directory"):
        return Path(folder_paths.get_user_directory()) / "discomfort" / "signing.key"
    config = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(config) / "discomfort" / "signing.key"


@dataclass(frozen=True)
class SigningKey:
    secret: bytes

    @property
    def key_id(self) -> str:
        """Names the key without revealing it, so a foreign signature is told apart from an altered payload."""
        return hashlib.sha256(b"discomfort-key-id:" + self.secret).hexdigest()[:16]

    def sign(self, payload: bytes) -> str:
        return hmac.new(self.secret, payload, hashlib.sha256).hexdigest()

    def verify(self, payload: bytes, signature: str) -> bool:
        return hmac.compare_digest(self.sign(payload), signature)

    def sign_record(self, record: Mapping[str, Any]) -> str:
        """The signature of a JSON record (a checkpoint's state, a ledger line), whatever order its keys are in."""
        return self.sign(_canonical(record))

    def verify_record(self, record: Mapping[str, Any], signature: str) -> bool:
        return self.verify(_canonical(record), signature)

    @classmethod
    def load_or_create(cls, path: str | os.PathLike | None = None) -> SigningKey:
        """Read the key at `path` (default `default_key_path()`), creating it with mode 0600 if absent."""
        path = Path(path) if path is not None else default_key_path()
        try:
            secret = path.read_bytes()
        except FileNotFoundError:
            secret = _create(path)
        if len(secret) != KEY_BYTES:
            raise SerializationError(f"signing key {path} is {len(secret)} bytes, expected {KEY_BYTES}")
        return cls(secret)


def _create(path: Path) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_bytes(KEY_BYTES)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(secret)
    try:
        os.link(temporary, path)  # fails if another process created the key meanwhile: then use theirs
    except FileExistsError:
        return path.read_bytes()
    finally:
        temporary.unlink(missing_ok=True)
    return secret


def _canonical(record: Mapping[str, Any]) -> bytes:
    return json.dumps(record, sort_keys=True, separators=(",", ":")).encode()
