"""Describing images through any OpenAI-compatible chat-completions endpoint.

The API key never passes through the graph: the node names an environment variable (or reads a key file in
ComfyUI's user folder), so no key ends up in a widget, a saved workflow or a PNG's metadata. Workflows are shared,
so what one names is checked: only variables the machine's owner allowed are read, only http and https URLs are
asked, every attempt is bounded in time and bytes and all of an image's attempts together in time, Cancel stops
the wait, the key does not follow a redirect to another host, and a key the endpoint quotes back (in a body or a
Location) is blanked before its words reach an error, a log or /history.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import logging
import os
import re
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import DiscomfortError, SettingsError, shown

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})
BACKOFF_SECONDS = 0.5  # first wait; doubled each retry, or what the server's Retry-After says
MAX_WAIT_SECONDS = 60.0  # a Retry-After longer than this is not waited for: the describer gives up at once
# All attempts for one image and the waits between them: 21 attempts of up to an hour (the widgets' limits) would
# hold ComfyUI's queue for a day. As long as the longest `timeout`, so a single attempt is never cut short by it.
MAX_TOTAL_SECONDS = 3600.0
MAX_RESPONSE_BYTES = 4 * 1024**2  # a description is a few KB; an endpoint sending more is refused, not buffered
MAX_REDIRECTS = 3  # 307 and 308 only: they keep the POST and its body
POLL_SECONDS = 0.1  # how often a waiting describer looks at ComfyUI's Cancel flag
KEY_FILE = Path("discomfort") / "api_key"  # in ComfyUI's user folder
KEY_PREFIX = "DISCOMFORT_API_KEY"  # variables named so are meant for Discomfort: any workflow may name them
ALLOWED_FILE = Path("discomfort") / "api_key_variables"  # in ComfyUI's user folder: more names, one per line
VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
MIN_REDACTED = 8  # shorter "keys" are not blanked out of text: they would garble it and protect nothing


class DescriberError(DiscomfortError):
    """The endpoint refused the request or never answered; names the status and the server's message."""


def allowed_variables() -> set[str]:
    """The variable names listed in <ComfyUI user folder>/discomfort/api_key_variables (besides the prefix)."""
    path = _user_path(ALLOWED_FILE)
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return set()
    return {line.split("#", 1)[0].strip() for line in lines} - {""}


def api_key(variable: Any) -> str:
    """The key from the environment variable `variable`, else from <ComfyUI user folder>/discomfort/api_key.

    Only a variable the machine's owner allowed is read: one named DISCOMFORT_API_KEY…, or one listed in
    <ComfyUI user folder>/discomfort/api_key_variables. Any other could hold a secret meant for something else,
    which a shared workflow would then send to the URL it names.
    """
    variable = variable.strip() if isinstance(variable, str) else variable
    if variable:
        if not isinstance(variable, str) or not VARIABLE_NAME.fullmatch(variable):
            raise SettingsError(f"api_key_env {shown(variable)} is not the name of an environment variable")
        if not variable.startswith(KEY_PREFIX) and variable not in allowed_variables():
            raise SettingsError(
                f"api_key_env {variable!r} names a variable the machine's owner has not allowed: name one that "
                f"starts with {KEY_PREFIX}, or list {variable} in {_user_path(ALLOWED_FILE)} (one name per line)"
            )
        if os.environ.get(variable):
            return os.environ[variable].strip()
    path = _user_path(KEY_FILE)
    if path.is_file():
        return path.read_text().strip()
    raise SettingsError(f"no API key: set the environment variable {variable or KEY_PREFIX} or write it to {path}")


def checked_url(base_url: Any) -> str:
    """`base_url` if it is an http or https URL with a host and no credentials; else a SettingsError."""
    url = base_url.strip() if isinstance(base_url, str) else base_url
    parts = urllib.parse.urlsplit(url) if isinstance(url, str) and len(url) <= 2048 else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise SettingsError(f"base_url {shown(base_url)} must be an http or https URL, e.g. https://api.openai.com/v1")
    if parts.username is not None or parts.password is not None:
        raise SettingsError(f"base_url {shown(base_url)} holds credentials; the key comes from api_key_env")
    if re.search(r"[\x00-\x20\x7f]", url):
        raise SettingsError(f"base_url {shown(base_url)} holds spaces or control characters")
    return url


async def describe(image_png: bytes, *, base_url: str, model: str, prompt: str, max_tokens: int, detail: str,
                   timeout: float, retries: int, key: str) -> str:  # fmt: skip
    """One chat-completions request for one image, retried with backoff on 429, 5xx and timeouts.

    Each attempt, the whole answer included, takes at most `timeout` seconds and `MAX_RESPONSE_BYTES`; a wait
    between attempts at most `MAX_WAIT_SECONDS`; all of them together at most `MAX_TOTAL_SECONDS`. Cancel in
    ComfyUI stops any of them at once.
    """
    url = checked_url(base_url).rstrip("/") + "/chat/completions"
    redact = _redactor(key)
    image_url = "data:image/png;base64," + base64.b64encode(image_png).decode("ascii")
    body = json.dumps({
        "model": model, "max_tokens": max_tokens,
        "messages": [{"role": "user", "content": [
            {"type": "text", "text": prompt},
            {"type": "image_url", "image_url": {"url": image_url, "detail": detail}},
        ]}],
    }).encode()  # fmt: skip
    wait = BACKOFF_SECONDS
    deadline = time.monotonic() + MAX_TOTAL_SECONDS
    for attempt in range(retries + 1):
        try:
            # no attempt runs past the deadline: a retry gets what is left of it when that is less than `timeout`
            left = max(deadline - time.monotonic(), 0.0)
            status, headers, data = await _until_done(_post(url, body, key, redact), min(timeout, left))
        except _Retryable as error:
            failure = redact(f"did not answer after {attempt + 1} attempt(s): {error}")
            if attempt == retries:
                raise DescriberError(f"{url} {failure}") from None
            delay = wait
        else:
            if status == 200:
                return redact(_text(data, url, redact))
            message = _server_message(data, status, redact)
            if status not in RETRY_STATUSES or attempt == retries:
                hint = " (check the API key)" if status in (401, 403) else ""
                raise DescriberError(f"{url} answered {status}{hint}: {message}")
            delay = _retry_after(headers.get("Retry-After"), wait)
            if delay > MAX_WAIT_SECONDS:
                raise DescriberError(f"{url} answered {status} and asked to wait {delay:g} s (more than "
                                     f"{MAX_WAIT_SECONDS:g} s); not retried: {message}")  # fmt: skip
            failure = f"answered {status}: {message}"
        if time.monotonic() + delay >= deadline:
            raise DescriberError(f"{url} {failure}; not retried: the describer gives up on an image after "
                                 f"{MAX_TOTAL_SECONDS:g} s in all, waits included")  # fmt: skip
        log.warning("describer: attempt %d failed, retrying in %.1f s", attempt + 1, delay)
        await _sleep(delay)
        wait = min(wait * 2, MAX_WAIT_SECONDS)
    raise AssertionError("unreachable")


class _Retryable(Exception):
    """An attempt that may succeed if tried again: a timeout, a refused or dropped connection."""


async def _post(url: str, body: bytes, key: str, redact: Callable[[str], str]) -> tuple[int, Any, bytes]:
    """POST `body`, following 307/308 redirects (the key only to the same origin); (status, headers, bytes).

    After a redirect `url` is the endpoint's choice (its Location), which may quote the key: every message naming
    it goes through `redact`.
    """
    import aiohttp

    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {key}"}
    origin = _origin(url)
    # trust_env would also read ~/.netrc; proxies from the environment are taken as urllib reads them. The time
    # is bounded by _until_done, around the whole attempt.
    async with aiohttp.ClientSession(trust_env=False, timeout=aiohttp.ClientTimeout(total=None)) as session:
        for _ in range(MAX_REDIRECTS + 1):
            try:
                async with session.post(url, data=body, headers=headers, allow_redirects=False,
                                        proxy=_proxy(url)) as response:  # fmt: skip
                    if response.status in (301, 302, 303, 307, 308) and "Location" in response.headers:
                        target = urllib.parse.urljoin(url, response.headers["Location"])
                        if response.status not in (307, 308):
                            raise DescriberError(redact(f"{url} redirected to {target} with {response.status}, "
                                                        "which would drop the request; the describer follows "
                                                        "redirects only with 307 and 308"))  # fmt: skip
                        try:
                            checked_url(target)
                        except SettingsError:  # it quotes the Location cut short, where a cut key is not found
                            raise DescriberError(f"{redact(url)} redirected to {shown(redact(target))}, which the "
                                                 "describer does not follow: it must be an http or https URL with a "
                                                 "host, no credentials and no spaces") from None  # fmt: skip
                        if _origin(target) != origin:
                            headers.pop("Authorization", None)  # the key was meant for the host the workflow named
                        url = target
                        continue
                    return response.status, response.headers, await _read(response, redact(url))
            except (aiohttp.ClientError, OSError) as error:
                raise _Retryable(f"{type(error).__name__}: {error}") from None
        raise DescriberError(redact(f"{url}: more than {MAX_REDIRECTS} redirects"))


async def _read(response: Any, url: str) -> bytes:
    length = response.content_length
    if length is not None and length > MAX_RESPONSE_BYTES:
        raise DescriberError(f"{url} answered {length} bytes; at most {MAX_RESPONSE_BYTES} are read")
    data = bytearray()
    while chunk := await response.content.read(65536):
        data += chunk
        if len(data) > MAX_RESPONSE_BYTES:
            raise DescriberError(f"{url} answered more than {MAX_RESPONSE_BYTES} bytes; at most {MAX_RESPONSE_BYTES} "
                                 "are read")  # fmt: skip
    return bytes(data)


async def _until_done(work: Any, timeout: float) -> Any:
    """Await `work`, for at most `timeout` seconds, giving up as soon as ComfyUI's Cancel is pressed."""
    task = asyncio.ensure_future(work)
    deadline = time.monotonic() + timeout
    try:
        while not task.done():
            _raise_if_interrupted(task)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _Retryable(f"no whole answer within {timeout} s")
            await asyncio.wait({task}, timeout=min(POLL_SECONDS, remaining))
        return task.result()
    finally:
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


async def _sleep(seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while (remaining := deadline - time.monotonic()) > 0:
        _raise_if_interrupted()
        await asyncio.sleep(min(POLL_SECONDS, remaining))
    _raise_if_interrupted()


def _raise_if_interrupted(task: Any = None) -> None:
    from ..executor import compat

    if compat.interrupt_requested():
        if task is not None:
            task.cancel()
        compat.raise_if_interrupted()


def _retry_after(value: str | None, default: float) -> float:
    try:
        seconds = float(value) if value is not None else default
    except ValueError:  # an HTTP date, or nonsense: keep our own backoff
        return default
    return seconds if seconds >= 0 else default


def _origin(url: str) -> tuple[str, str, int]:
    parts = urllib.parse.urlsplit(url)
    return parts.scheme, (parts.hostname or "").lower(), parts.port or (443 if parts.scheme == "https" else 80)


def _proxy(url: str) -> str | None:
    """The proxy the environment names for `url` (HTTP_PROXY, HTTPS_PROXY, NO_PROXY), as urllib would use."""
    parts = urllib.parse.urlsplit(url)
    if urllib.request.proxy_bypass(parts.hostname or ""):
        return None
    return urllib.request.getproxies().get(parts.scheme)


def _redactor(key: str) -> Callable[[str], str]:
    if len(key) < MIN_REDACTED:
        return lambda text: text
    return lambda text: text.replace(key, "[api key]")


def _text(data: bytes, url: str, redact: Callable[[str], str]) -> str:
    try:
        reply = json.loads(data)
        return str(reply["choices"][0]["message"]["content"]).strip()
    except (ValueError, KeyError, IndexError, TypeError):
        excerpt = redact(data.decode("utf-8", "replace"))[:300]  # blanked, then cut: a cut key is not found
        raise DescriberError(f"{url} answered without choices[0].message.content: {excerpt}") from None


def _server_message(data: bytes, status: int, redact: Callable[[str], str]) -> str:
    raw = redact(data.decode("utf-8", "replace"))[:2000]  # blanked, then cut: a cut key is not found
    try:
        return redact(str(json.loads(raw)["error"]["message"]))  # again: JSON may have escaped the key
    except (ValueError, KeyError, TypeError):
        return raw.strip() or f"HTTP {status}"


def _user_path(name: Path) -> Path:
    import folder_paths

    return Path(folder_paths.get_user_directory()) / name


class DiscomfortImageDescriber:
    """Describes each image of a batch with a vision model behind an OpenAI-compatible endpoint."""

    DESCRIPTION = (
        "Describes images through any OpenAI-compatible chat-completions endpoint (OpenAI, a local server...). "
        f"The API key is read from the environment variable named in api_key_env (one starting with {KEY_PREFIX}, "
        "or one the machine's owner listed in user/discomfort/api_key_variables), or from user/discomfort/api_key; "
        "it is never stored in the workflow. Retries 429, 5xx and timeouts with backoff; Cancel stops it."
    )
    CATEGORY = "Discomfort"
    RETURN_TYPES = ("STRING",)
    RETURN_NAMES = ("description",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {
            "image": ("IMAGE",),
            "base_url": ("STRING", {"default": "https://api.openai.com/v1", "tooltip": "An http or https URL."}),
            "model": ("STRING", {"default": "gpt-4o-mini"}),
            "prompt": ("STRING", {"default": "Describe this image in one paragraph.", "multiline": True}),
            "max_tokens": ("INT", {"default": 300, "min": 1, "max": 100_000}),
            "detail": (["auto", "low", "high"], {"default": "auto"}),
            "timeout": ("FLOAT", {"default": 60.0, "min": 0.1, "max": 3600.0,
                                  "tooltip": "Seconds for one attempt, the whole answer included."}),
            "retries": ("INT", {"default": 3, "min": 0, "max": 20}),
            "api_key_env": ("STRING", {"default": KEY_PREFIX, "tooltip": "The NAME of the environment variable "
                                       f"holding the key: one starting with {KEY_PREFIX}, or one listed in "
                                       "user/discomfort/api_key_variables. Empty: user/discomfort/api_key."}),
        }, "hidden": {"unique_id": "UNIQUE_ID"}}  # fmt: skip

    async def run(self, image: Any, base_url: str, model: str, prompt: str, max_tokens: int, detail: str,
                  timeout: float, retries: int, api_key_env: str, unique_id: str = "?") -> tuple[str]:  # fmt: skip
        from .save import to_pil

        try:
            checked_url(base_url)  # before the key is read: a file:// URL must not learn whether a key exists
            key = api_key(api_key_env)
        except SettingsError as error:
            raise SettingsError(f"node {unique_id} (DiscomfortImageDescriber): {error}") from None
        texts = []
        for frame in image:
            buffer = io.BytesIO()
            to_pil(frame).save(buffer, "PNG")
            options = {"base_url": base_url, "model": model, "prompt": prompt, "max_tokens": max_tokens,
                       "detail": detail, "timeout": timeout, "retries": retries, "key": key}  # fmt: skip
            texts.append(await describe(buffer.getvalue(), **options))
        return ("\n\n".join(texts),)
