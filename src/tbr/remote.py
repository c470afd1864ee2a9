"""An OpenAI-compatible chat-completions client: retries, bounded concurrency, a disk cache.

Used by external reflections, LLM judges and API generation. It speaks
`POST {base_url}/chat/completions` with httpx directly (not the `openai` package), so that
every failure is classified here and the retries below are the only ones:

- HTTP 429, 408 and 5xx, timeouts, connection errors, and malformed replies (a body that is not
  JSON, no `choices[0].message.content` string, or `validate(text)` false) are retried with
  exponential backoff: `min(backoff_max, backoff_base * 2**k)` scaled by a random factor in
  [0.5, 1]; a `Retry-After` (or `retry-after-ms`) header is honoured as a lower bound, up to
  `MAX_RETRY_AFTER` seconds. After `max_retries` retries (so `max_retries + 1` attempts) the
  request fails with `RemoteFailure("... gave up after N attempts: last error: ...")`.
- Any other non-2xx status (400, 401, 403, 404, ...) fails at once with the status and the
  server's own error message.

The API key is read once, from the environment variable named by `api_key_env`, and is only ever
sent in the `Authorization` header: it is not part of the cache key or cache files, and it is
scrubbed from every error message and from `repr()`.

Cache (when `cache_dir` is set): one small JSON file per successful, validated reply, keyed by
sha256 of json(model, messages, params), written atomically. A hit makes no request.
"""
from __future__ import annotations

import json
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
from tqdm import tqdm

from tbr.errors import TbrError
from tbr.io import atomic_write_text
from tbr.remote_http import Messages, cache_key, is_local_url, parse_retry_after, safe_url, server_message, snippet

log = logging.getLogger(__name__)

Validator = Callable[[str], bool]

MAX_RETRY_AFTER = 120.0  # seconds; a server asking for longer is waited on this long at most
_RESERVED_PARAMS = {"model", "messages", "stream"}
_RETRY_STATUSES = {408, 429}


class RemoteFailure(Exception):
    """A chat request that did not succeed. `str()` is one line and never holds the API key.

    `status` is the HTTP status of the last reply (None for timeouts and connection errors);
    `gave_up` is True when retries were exhausted, False when the request failed at once
    (a 4xx other than 408/429) or was cancelled.
    """

    def __init__(self, message: str, *, status: int | None = None, gave_up: bool = False) -> None:
        super().__init__(" ".join(message.split()))
        self.status = status
        self.gave_up = gave_up


class _Retry(Exception):
    """One failed attempt worth retrying."""

    def __init__(self, message: str, *, status: int | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class ChatClient:
    """Chat completions against an OpenAI-compatible server (OpenAI, vLLM, llama.cpp, ...).

    `base_url` is the API root, e.g. `https://api.openai.com/v1` or `http://127.0.0.1:8000/v1`;
    requests go to `{base_url}/chat/completions`. Thread-safe: at most `concurrency` requests are
    in flight across all threads using this client. `stats` counts requests, retries, cache hits
    and failures since construction.
    """

    def __init__(self, base_url: str, model: str, api_key_env: str = "OPENAI_API_KEY",
                 concurrency: int = 4, timeout: float = 60.0, max_retries: int = 5,
                 cache_dir: Path | str | None = None, backoff_base: float = 0.5,
                 backoff_max: float = 20.0) -> None:
        scheme = urlsplit(base_url).scheme
        if scheme not in ("http", "https") or not urlsplit(base_url).hostname:
            raise TbrError(f"API base URL must start with http:// or https:// and name a host, "
                           f"got {safe_url(base_url)!r}")
        if not model:
            raise TbrError("API model name must not be empty")
        if concurrency < 1:
            raise TbrError(f"API concurrency must be at least 1, got {concurrency}")
        if max_retries < 0:
            raise TbrError(f"API max_retries must be 0 or more, got {max_retries}")
        if timeout <= 0:
            raise TbrError(f"API timeout must be positive, got {timeout}")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.api_key_env = api_key_env
        self.concurrency = int(concurrency)
        self.timeout = float(timeout)
        self.max_retries = int(max_retries)
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.backoff_base = float(backoff_base)
        self.backoff_max = float(backoff_max)
        self._where = f"{model} at {safe_url(self.base_url)}"
        local = is_local_url(self.base_url)
        key = os.environ.get(api_key_env) or None
        if key is None and not local:
            raise TbrError(f"environment variable {api_key_env} is not set; it must hold the API "
                           f"key for {safe_url(self.base_url)}")
        self._key = key
        u = urlsplit(self.base_url)
        path = u.path.rstrip("/")
        if not path.endswith("/chat/completions"):
            path += "/chat/completions"
        self._endpoint = urlunsplit((u.scheme, u.netloc, path, u.query, ""))
        headers = {"Content-Type": "application/json"}
        if key is not None:
            headers["Authorization"] = f"Bearer {key}"
        self._http = httpx.Client(
            headers=headers, timeout=httpx.Timeout(self.timeout),
            limits=httpx.Limits(max_connections=self.concurrency,
                                max_keepalive_connections=self.concurrency),
            # proxies from the environment must not capture a local server
            trust_env=not local, follow_redirects=False)
        self._slots = threading.BoundedSemaphore(self.concurrency)
        self._lock = threading.Lock()
        self.stats = {"requests": 0, "retries": 0, "cache_hits": 0, "failures": 0}

    # -- housekeeping ----------------------------------------------------------------------

    def __repr__(self) -> str:
        return (f"ChatClient(base_url={safe_url(self.base_url)!r}, model={self.model!r}, "
                f"api_key_env={self.api_key_env!r}, api_key={'set' if self._key else 'unset'}, "
                f"concurrency={self.concurrency}, timeout={self.timeout:g}, "
                f"max_retries={self.max_retries}, cache_dir={str(self.cache_dir) if self.cache_dir else None!r})")

    __str__ = __repr__

    def __getstate__(self) -> None:
        raise TypeError("ChatClient cannot be pickled (it holds an API key)")

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ChatClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _redact(self, text: str) -> str:
        if self._key:
            text = text.replace(self._key, "***")
        return text

    def _count(self, name: str, n: int = 1) -> None:
        with self._lock:
            self.stats[name] += n

    # -- cache -----------------------------------------------------------------------------

    def _cache_path(self, key: str) -> Path:
        assert self.cache_dir is not None
        return self.cache_dir / key[:2] / f"{key}.json"

    def _cache_get(self, key: str) -> str | None:
        if self.cache_dir is None:
            return None
        try:
            data = json.loads(self._cache_path(key).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if isinstance(data, dict) and data.get("model") == self.model and isinstance(data.get("text"), str):
            return data["text"]
        return None

    def _cache_put(self, key: str, text: str) -> None:
        if self.cache_dir is None:
            return
        blob = json.dumps({"key": key, "model": self.model, "text": text}, ensure_ascii=False) + "\n"
        try:
            atomic_write_text(self._cache_path(key), blob)
        except (OSError, TbrError) as e:  # a cache that cannot be written only costs requests
            log.warning("cannot write API cache entry %s: %s", key[:12], e)

    # -- one request -----------------------------------------------------------------------

    def _check_params(self, params: Mapping[str, Any]) -> None:
        bad = _RESERVED_PARAMS & set(params)
        if bad:
            raise ValueError(f"ChatClient: {', '.join(sorted(bad))} cannot be passed as a request parameter")

    def _attempt(self, body: Mapping[str, Any]) -> str:
        """One HTTP request; the reply text, or `_Retry`, or `RemoteFailure` for a fatal status."""
        self._count("requests")
        with self._slots:
            try:
                resp = self._http.post(self._endpoint, json=body)
            except httpx.TimeoutException:
                raise _Retry(f"no reply within {self.timeout:g} s") from None
            except httpx.RequestError as e:
                raise _Retry(f"connection error ({type(e).__name__}: {self._redact(str(e)) or 'no detail'})") from None
        code = resp.status_code
        if code in _RETRY_STATUSES or code >= 500:
            raise _Retry(f"HTTP {code}: {self._redact(server_message(resp))}", status=code,
                         retry_after=parse_retry_after(resp.headers))
        if not 200 <= code < 300:
            raise RemoteFailure(f"{self._where}: HTTP {code}: {self._redact(server_message(resp))}",
                                status=code)
        try:
            data = resp.json()
        except ValueError:
            raise _Retry(f"malformed reply: body is not JSON (starts {snippet(resp.text, 40)})",
                         status=code) from None
        try:
            text = data["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            text = None
        if not isinstance(text, str):
            raise _Retry("malformed reply: no choices[0].message.content string", status=code)
        return text

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        cap = min(self.backoff_max, self.backoff_base * 2.0 ** min(attempt, 60))
        delay = cap * (0.5 + 0.5 * random.random())
        if retry_after is not None:
            delay = max(delay, min(retry_after, MAX_RETRY_AFTER))
        return delay

    def _complete_one(self, messages: Messages, params: Mapping[str, Any],
                      validate: Validator | None, stop: threading.Event | None) -> tuple[str, bool]:
        """(reply text, came from cache); raises RemoteFailure."""
        key = cache_key(self.model, messages, params) if self.cache_dir is not None else ""
        hit = self._cache_get(key) if key else None
        if hit is not None and (validate is None or _is_valid(validate, hit)[0]):
            self._count("cache_hits")
            return hit, True
        body = {"model": self.model, "messages": messages, **params}
        attempts = self.max_retries + 1
        last: _Retry | None = None
        for attempt in range(attempts):
            if stop is not None and stop.is_set():
                self._count("failures")
                raise RemoteFailure(f"{self._where}: cancelled")
            try:
                text = self._attempt(body)
                if validate is not None:
                    ok, why = _is_valid(validate, text)
                    if not ok:
                        raise _Retry(f"reply failed validation ({why}): {snippet(text)}")
            except _Retry as e:
                last = e
                if attempt + 1 < attempts:
                    self._count("retries")
                    delay = self._delay(attempt, e.retry_after)
                    log.debug("%s: attempt %d failed (%s); retrying in %.2f s",
                              self._where, attempt + 1, e, delay)
                    if stop is not None:
                        if stop.wait(delay):
                            continue  # cancelled while waiting; reported at the top
                    else:
                        time.sleep(delay)
                continue
            except RemoteFailure:
                self._count("failures")
                raise
            if key:
                self._cache_put(key, text)
            return text, False
        self._count("failures")
        raise RemoteFailure(f"{self._where}: gave up after {attempts} attempts: last error: {last}",
                            status=last.status if last else None, gave_up=True)

    # -- public API ------------------------------------------------------------------------

    def complete(self, messages: Messages, *, validate: Validator | None = None, **params: Any) -> str:
        """The reply text for one conversation; raises RemoteFailure. `params` (temperature,
        max_tokens, ...) go into the request body as they are."""
        self._check_params(params)
        return self._complete_one(messages, params, validate, None)[0]

    def complete_many(self, items: Sequence[Messages],
                      validate: Validator | Sequence[Validator | None] | None = None,
                      progress: bool = True, desc: str = "api",
                      on_result: Callable[[int, str | RemoteFailure], None] | None = None,
                      **params: Any) -> list[str | RemoteFailure]:
        """Reply texts in the order of `items`; a failed item holds its RemoteFailure instead.

        `validate` is one function for all items, or a sequence with one per item.
        `on_result(index, result)` is called in the calling thread as each item finishes
        (in completion order), so callers can save results as they come. An exception from
        `on_result` or a KeyboardInterrupt cancels what has not started and re-raises.
        """
        self._check_params(params)
        n = len(items)
        if validate is None or callable(validate):
            validators: Sequence[Validator | None] = [validate] * n
        else:
            validators = list(validate)
            if len(validators) != n:
                raise ValueError(f"complete_many: {len(validators)} validators for {n} items")
        results: list[str | RemoteFailure | None] = [None] * n
        if n == 0:
            return []
        stop = threading.Event()
        pool = ThreadPoolExecutor(max_workers=min(self.concurrency, n), thread_name_prefix="tbr-api")
        bar = tqdm(total=n, desc=desc, disable=not progress, unit="req", dynamic_ncols=True)
        failed = 0
        try:
            futures = {pool.submit(self._complete_one, items[i], params, validators[i], stop): i
                       for i in range(n)}
            for fut in as_completed(futures):
                i = futures[fut]
                try:
                    res: str | RemoteFailure = fut.result()[0]
                except RemoteFailure as e:
                    res = e
                    failed += 1
                    bar.set_postfix(failed=failed, refresh=False)
                results[i] = res
                if on_result is not None:
                    on_result(i, res)
                bar.update(1)
        except BaseException:
            stop.set()
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        finally:
            bar.close()
        pool.shutdown(wait=True)
        return results  # type: ignore[return-value]


def _is_valid(validate: Validator, text: str) -> tuple[bool, str]:
    try:
        ok = bool(validate(text))
    except Exception as e:  # a validator that raises on odd text means the text is odd
        return False, f"validator raised {type(e).__name__}: {e}"
    return ok, "" if ok else "validator returned False"
