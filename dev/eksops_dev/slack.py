"""A local stand-in for Slack's incoming webhooks: records posts, answers as told, renders them readably."""

from __future__ import annotations

import html
import http.server
import json
import threading
from collections import deque
from typing import Any

from eksops_dev.shims import POLL_S


class SlackReceiver:
    """An HTTP server on 127.0.0.1 that records each POST body; ``script`` queues non-200 answers."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.attempts = 0
        self.script: deque[tuple[int, dict[str, str], str]] = deque()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.attempts += 1
                status, headers, text = receiver.script.popleft() if receiver.script else (200, {}, "ok")
                if status == 200:
                    receiver.received.append(json.loads(body))
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(text)))
                self.end_headers()
                self.wfile.write(text.encode())

            def log_message(self, *args: Any) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/services/T000/B000/XXXXSECRETXXXX"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(POLL_S,), daemon=True)

    def __enter__(self) -> SlackReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def answer(self, status: int, *, headers: dict[str, str] | None = None, text: str = "") -> None:
        """Queue one answer for the next POST (then 200 again)."""
        self.script.append((status, headers or {}, text))


def render(payload: dict[str, Any]) -> list[str]:
    """A Slack webhook payload as plain lines, roughly as Slack shows it."""
    blocks = [b for a in payload.get("attachments", []) for b in a.get("blocks", [])] + payload.get("blocks", [])
    lines: list[str] = []
    for block in blocks:
        kind = block.get("type")
        if kind == "header":
            lines.append(f"== {block['text']['text']} ==")
        elif kind == "section":
            if "text" in block:
                lines.extend(block["text"]["text"].splitlines())
            for field in block.get("fields", []):
                lines.append("  " + field["text"].replace("\n", ": ", 1))
        elif kind == "context":
            lines.append("  (" + " ".join(e.get("text", "") for e in block["elements"]) + ")")
    return [html.unescape(line) for line in lines]
