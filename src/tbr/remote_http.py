"""Pure helpers of the chat client (tbr.remote): which URLs are local, the base URL with its
secrets cut, Retry-After headers, the server's own error message, and the cache key."""
from __future__ import annotations

import email.utils
import hashlib
import json
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import httpx

Messages = list[dict[str, Any]]
_LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1", "0.0.0.0"}


def is_local_url(base_url: str) -> bool:
    host = urlsplit(base_url).hostname or ""
    return host in _LOCAL_HOSTS or host.endswith(".localhost")


def safe_url(base_url: str) -> str:
    """The base URL without user info, query or fragment (where secrets sometimes hide)."""
    u = urlsplit(base_url)
    host = u.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{u.port}" if u.port else ""
    return f"{u.scheme}://{host}{port}{u.path.rstrip('/')}"


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - time.time())


def server_message(resp: httpx.Response) -> str:
    """The server's error message, from `{"error": {"message": ...}}` or the raw body."""
    msg: Any = None
    try:
        data = resp.json()
    except ValueError:
        data = None
    if isinstance(data, dict):
        err = data.get("error")
        if isinstance(err, dict):
            msg = err.get("message") or err.get("type") or err.get("code")
        elif isinstance(err, str):
            msg = err
        if not msg:
            msg = data.get("message") or data.get("detail")
    if not msg:
        msg = resp.text or resp.reason_phrase or "no message"
    msg = " ".join(str(msg).split())
    return msg[:300] + ("..." if len(msg) > 300 else "")


def snippet(text: str, n: int = 80) -> str:
    text = " ".join(text.split())
    return repr(text[:n] + ("..." if len(text) > n else ""))


def cache_key(model: str, messages: Messages, params: Mapping[str, Any]) -> str:
    """sha256 of json(model, messages, params); neither the API key nor the base URL enters it."""
    blob = json.dumps({"model": model, "messages": messages, "params": dict(params)},
                      sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()
