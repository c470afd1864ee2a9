"""The local labelling page: a tiny HTTP server on the loopback interface, for one reviewer.

    GET  /<token>/            the page (assets/review.html, self-contained)
    GET  /<token>/api/state   what to label, this reviewer's labels so far, and where to resume
    POST /<token>/api/label   {rid, label, note}: appended to labels.jsonl (fsynced) before the reply

The token is a secret in the address, so another local user or a web page in the reviewer's
browser cannot read the sample or write labels: any other path gets 403. The page never sees
which model wrote an answer, the judges' verdicts or the stratum, so nothing anchors the
reviewer. Labels are re-read from disk on every request, so the terminal labeller or a second
tab writing to the same folder is seen at once.
"""
from __future__ import annotations

import hmac
import json
import re
import secrets
import socket
import sys
import threading
from collections.abc import Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, cast

from tbr.errors import TbrError
from tbr.review.store import (
    ADJUDICATOR,
    CLASSES,
    DEFINITIONS,
    append_label,
    by_reviewer,
    disagreements,
    latest,
    read_labels,
    read_sample,
)

PAGE = Path(__file__).resolve().parent / "assets" / "review.html"
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
# the fields a reviewer sees: never model, verdicts, stratum or prompt_label
PUBLIC_FIELDS = ("rid", "prompt", "response", "reflection", "answer")
MAX_BODY = 1 << 20  # a label with a long note is a few KiB; anything bigger is not from the page
_TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{8,}")
# the page is inline HTML/CSS/JS that only talks to this server; nothing else may load or run
_CSP = ("default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; "
        "img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


def _public(row: Mapping[str, Any]) -> dict[str, Any]:
    return {k: row.get(k) for k in PUBLIC_FIELDS}


class ReviewServer(ThreadingHTTPServer):
    """Serves one review folder to one reviewer (or the adjudicator) until shut down."""

    daemon_threads = True

    def __init__(self, folder: Path, reviewer: str, host: str, port: int, token: str, adjudicate: bool,
                 debug: bool = False) -> None:
        self.folder = Path(folder)
        self.reviewer = reviewer
        self.token = token
        self.adjudicate = adjudicate
        self.debug = debug
        _, rows = read_sample(self.folder)
        self.rows = rows
        self.rids = {r["rid"] for r in rows}
        self.page = PAGE.read_bytes()
        # two tabs labelling at once must not interleave two appends to labels.jsonl
        self.write_lock = threading.Lock()
        if ":" in host:  # ::1 needs an IPv6 socket; the class default is IPv4
            self.address_family = socket.AF_INET6
        super().__init__((host, port), ReviewHandler)

    @property
    def url(self) -> str:
        host, port = self.socket.getsockname()[:2]  # the bound address: port 0 became a real one
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{port}/{self.token}/"

    def rows_now(self, labels: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """The rows to label: the whole sample, or (adjudicating) the rows reviewers disagree on."""
        if not self.adjudicate:
            return self.rows
        split = set(disagreements(labels))
        return [r for r in self.rows if r["rid"] in split]

    def mine(self, labels: Sequence[Mapping[str, Any]], rows: Sequence[Mapping[str, Any]]) -> dict[str, dict]:
        """rid -> {label, note}: this reviewer's latest labels, or the adjudications when adjudicating."""
        who = ADJUDICATOR if self.adjudicate else self.reviewer
        lat = latest(labels)
        out = {}
        for r in rows:
            line = lat.get((r["rid"], who))
            if line is not None:
                out[r["rid"]] = {"label": line["label"], "note": line.get("note", "")}
        return out

    def state(self) -> dict[str, Any]:
        labels = read_labels(self.folder)
        rows = self.rows_now(labels)
        mine = self.mine(labels, rows)
        shown = [_public(r) for r in rows]
        if self.adjudicate:
            # the adjudicator sees what each reviewer said (and why), still never the judges
            lat = latest(labels)
            names = by_reviewer(labels)
            for row in shown:
                row["reviewers"] = {n: got[row["rid"]] for n, got in sorted(names.items()) if row["rid"] in got}
                row["notes"] = {n: lat[(row["rid"], n)].get("note", "") for n in row["reviewers"]
                                if lat[(row["rid"], n)].get("note")}
        resume = next((i for i, r in enumerate(rows) if r["rid"] not in mine), len(rows))
        return {"reviewer": self.reviewer, "adjudicate": self.adjudicate, "classes": list(CLASSES),
                "definitions": dict(DEFINITIONS), "rows": shown, "labels": mine, "resume": resume,
                "labelled": len(mine), "total": len(rows)}

    def label(self, body: Any) -> tuple[int, dict[str, Any]]:
        """Validate and append one label; (status, reply). The reply comes only once it is on disk."""
        if not isinstance(body, dict):
            return 400, {"error": "the body must be a JSON object {rid, label, note}"}
        rid, label, note = body.get("rid"), body.get("label"), body.get("note", "")
        if not isinstance(note, str):
            return 400, {"error": "note must be a string"}
        if label not in CLASSES:
            return 400, {"error": f"label {label!r} is not one of {', '.join(CLASSES)}"}
        with self.write_lock:
            labels = read_labels(self.folder)
            rows = self.rows_now(labels)
            if not isinstance(rid, str) or rid not in {r["rid"] for r in rows}:
                known = isinstance(rid, str) and rid in self.rids
                what = "is not a row the reviewers disagree on" if known else "is not in this sample"
                return 400, {"error": f"rid {rid!r} {what}"}
            try:
                line = append_label(self.folder, rid, label, self.reviewer, note, adjudicated=self.adjudicate)
            except TbrError as e:
                return 400, {"error": str(e)}
            except OSError as e:  # disk full, folder gone: the page must not advance
                return 500, {"error": f"could not write the label: {e}"}
            mine = self.mine([*labels, line], rows)
        return 200, {"ok": True, "labelled": len(mine), "total": len(rows)}


class ReviewHandler(BaseHTTPRequestHandler):
    server_version = "tbr-review"
    sys_version = ""

    @property
    def app(self) -> ReviewServer:
        return cast(ReviewServer, self.server)

    def log_message(self, format: str, *args: Any) -> None:
        # the terminal shows the review URL and progress; one line per request would bury it
        if self.app.debug:
            sys.stderr.write("review: " + (format % args) + "\n")

    def _send(self, status: int, body: bytes, ctype: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        # the address holds the token: no cache, no Referer, no framing, no sniffing
        self.send_header("Cache-Control", "no-store")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Content-Security-Policy", _CSP)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, obj: Mapping[str, Any]) -> None:
        self._send(status, json.dumps(obj, ensure_ascii=False).encode("utf-8"), "application/json; charset=utf-8")

    def _text(self, status: int, msg: str) -> None:
        self._send(status, (msg + "\n").encode("utf-8"), "text/plain; charset=utf-8")

    def _host_ok(self) -> bool:
        """A Host header naming the loopback: a rebound DNS name pointing here is refused."""
        host = self.headers.get("Host")
        if host is None:
            return True  # HTTP/1.0 clients may omit it; browsers (the rebinding risk) always send it
        name = host[:host.index("]") + 1] if host.startswith("[") and "]" in host else host.split(":")[0]
        return name.lower() in ("127.0.0.1", "localhost", "[::1]")

    def _route(self) -> str | None:
        """The path under the token ('' for the page), or None when the token is missing or wrong."""
        path = self.path.split("?", 1)[0].split("#", 1)[0]
        parts = path.split("/", 2)
        if len(parts) < 3 or parts[0] != "":
            return None
        given = parts[1].encode("utf-8", "surrogateescape")
        if not hmac.compare_digest(given, self.app.token.encode("utf-8")):
            return None
        return parts[2]

    def _dispatch(self, method: str) -> None:
        where = self._route() if self._host_ok() else None
        if where is None:
            self._text(403, "forbidden: open the address `tbr review` printed, token included")
            return
        routes = {"": "GET", "api/state": "GET", "api/label": "POST"}
        if where not in routes:
            self._text(404, "not found")
        elif routes[where] != method:
            self._text(405, "method not allowed")
        elif where == "":
            self._send(200, self.app.page, "text/html; charset=utf-8")
        elif where == "api/state":
            self._json(200, self.app.state())
        else:
            self._post_label()

    def _post_label(self) -> None:
        try:
            size = int(self.headers.get("Content-Length", ""))
        except ValueError:
            self._json(411, {"error": "a Content-Length is needed"})
            return
        if not 0 <= size <= MAX_BODY:
            self._json(413, {"error": "the body is too large"})
            return
        try:
            body = json.loads(self.rfile.read(size).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            self._json(400, {"error": "the body is not valid JSON"})
            return
        status, reply = self.app.label(body)
        self._json(status, reply)

    def do_GET(self) -> None:  # http.server's naming
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")


def make_server(folder: Path, reviewer: str, *, host: str = "127.0.0.1", port: int = 0, token: str | None = None,
                adjudicate: bool = False, debug: bool = False) -> ReviewServer:
    """A server bound to the loopback (port 0: any free port); `.url` is the address to open."""
    if host not in LOCAL_HOSTS:
        raise TbrError(f"the review page only listens on this machine ({', '.join(LOCAL_HOSTS)}), not {host!r}: "
                       "the sample holds model output and the labels are the study's data")
    name = reviewer.strip()
    if not name:
        raise TbrError("a reviewer name is needed (--reviewer NAME)")
    if not adjudicate and name == ADJUDICATOR:
        # the store files adjudications under this name: a reviewer called so would be dropped
        raise TbrError(f"{ADJUDICATOR!r} is reserved for adjudication: pick another reviewer name")
    token = secrets.token_urlsafe(16) if token is None else token
    if not _TOKEN_RE.fullmatch(token):
        raise TbrError("the token must be at least 8 characters of A-Z, a-z, 0-9, '_' or '-'")
    try:
        return ReviewServer(Path(folder), name, host, port, token, adjudicate, debug)
    except OSError as e:
        raise TbrError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
