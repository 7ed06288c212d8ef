"""Describing images through any OpenAI-compatible chat-completions endpoint.

The API key never passes through the graph: the node names an environment variable (or reads a key file in
ComfyUI's user folder), so no key ends up in a widget, a saved workflow or a PNG's metadata.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import os
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from ..errors import DiscomfortError, SettingsError

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})
BACKOFF_SECONDS = 0.5  # first wait; doubled each retry, or what the server's Retry-After says
KEY_FILE = Path("discomfort") / "api_key"  # in ComfyUI's user folder


class DescriberError(DiscomfortError):
    """The endpoint refused the request or never answered; names the status and the server's message."""


def api_key(variable: str) -> str:
    """The key from the environment variable `variable`, else from <ComfyUI user folder>/discomfort/api_key."""
    if variable and os.environ.get(variable):
        return os.environ[variable].strip()
    import folder_paths

    path = Path(folder_paths.get_user_directory()) / KEY_FILE
    if path.is_file():
        return path.read_text().strip()
    raise SettingsError(
        f"no API key: set the environment variable {variable or 'OPENAI_API_KEY'} or write it to {path}"
    )


def describe(image_png: bytes, *, base_url: str, model: str, prompt: str, max_tokens: int, detail: str,
             timeout: float, retries: int, key: str) -> str:  # fmt: skip
    """One chat-completions request for one image, retried with backoff on 429, 5xx and timeouts."""
    url = base_url.rstrip("/") + "/chat/completions"
    image_url = "data:image/png;base64," + base64.b64encode(image_png).decode("ascii")
    body = json.dumps({
        "model": model, "max_tokens": max_tokens,
        "messages": [{"role": "user", "content": [
            {"type": "text", "text": prompt},
            {"type": "image_url", "image_url": {"url": image_url, "detail": detail}},
        ]}],
    }).encode()  # fmt: skip
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {key}"}
    wait = BACKOFF_SECONDS
    for attempt in range(retries + 1):
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return _text(json.loads(response.read()), url)
        except urllib.error.HTTPError as error:
            message = _server_message(error)
            if error.code not in RETRY_STATUSES or attempt == retries:
                hint = " (check the API key)" if error.code in (401, 403) else ""
                raise DescriberError(f"{url} answered {error.code}{hint}: {message}") from None
            retry_after = error.headers.get("Retry-After")
            delay = float(retry_after) if retry_after and retry_after.replace(".", "", 1).isdigit() else wait
        except (TimeoutError, urllib.error.URLError) as error:
            reason = getattr(error, "reason", error)
            if attempt == retries:
                raise DescriberError(f"{url} did not answer after {retries + 1} attempt(s): {reason}") from None
            delay = wait
        log.warning("describer: attempt %d failed, retrying in %.1f s", attempt + 1, delay)
        time.sleep(delay)
        wait *= 2
    raise AssertionError("unreachable")


def _text(reply: Any, url: str) -> str:
    try:
        return str(reply["choices"][0]["message"]["content"]).strip()
    except (KeyError, IndexError, TypeError):
        raise DescriberError(f"{url} answered without choices[0].message.content: {str(reply)[:300]}") from None


def _server_message(error: urllib.error.HTTPError) -> str:
    raw = error.read()[:2000].decode("utf-8", "replace")
    try:
        return str(json.loads(raw)["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return raw.strip() or error.reason


class DiscomfortImageDescriber:
    """Describes each image of a batch with a vision model behind an OpenAI-compatible endpoint."""

    DESCRIPTION = (
        "Describes images through any OpenAI-compatible chat-completions endpoint (OpenAI, a local server...). "
        "The API key is read from the environment variable named in api_key_env, or from "
        "user/discomfort/api_key; it is never stored in the workflow. Retries 429, 5xx and timeouts with backoff."
    )
    CATEGORY = "Discomfort"
    RETURN_TYPES = ("STRING",)
    RETURN_NAMES = ("description",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {
            "image": ("IMAGE",),
            "base_url": ("STRING", {"default": "https://api.openai.com/v1"}),
            "model": ("STRING", {"default": "gpt-4o-mini"}),
            "prompt": ("STRING", {"default": "Describe this image in one paragraph.", "multiline": True}),
            "max_tokens": ("INT", {"default": 300, "min": 1, "max": 100_000}),
            "detail": (["auto", "low", "high"], {"default": "auto"}),
            "timeout": ("FLOAT", {"default": 60.0, "min": 0.1, "max": 3600.0}),
            "retries": ("INT", {"default": 3, "min": 0, "max": 20}),
            "api_key_env": ("STRING", {"default": "OPENAI_API_KEY",
                                       "tooltip": "The NAME of the environment variable holding the key."}),
        }}  # fmt: skip

    def run(self, image: Any, base_url: str, model: str, prompt: str, max_tokens: int, detail: str, timeout: float,
            retries: int, api_key_env: str) -> tuple[str]:  # fmt: skip
        from .save import to_pil

        key = api_key(api_key_env.strip())
        texts = []
        for frame in image:
            buffer = io.BytesIO()
            to_pil(frame).save(buffer, "PNG")
            options = {"base_url": base_url, "model": model, "prompt": prompt, "max_tokens": max_tokens,
                       "detail": detail, "timeout": timeout, "retries": retries, "key": key}  # fmt: skip
            texts.append(describe(buffer.getvalue(), **options))
        return ("\n\n".join(texts),)
