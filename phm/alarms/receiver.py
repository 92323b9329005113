"""A reference webhook receiver, as a SCADA gateway would implement one: it verifies the
Standard Webhooks signature (401 when missing or wrong, 400 when stale), dedupes on
``webhook-id`` and records what it accepted, in arrival order.

Used by the tests, the benchmark and the end-to-end check. ``misbehave`` lets a caller script
failures per request (HTTP status, ``Retry-After``, a hang longer than the sender's timeout),
which is how retries, 429 and 410 handling are exercised against a real HTTP peer.

Run standalone: ``python -m phm.alarms.receiver --port 8765 --secret whsec_...``.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from phm.alarms.signing import WebhookVerificationError, verify


@dataclass(frozen=True, slots=True)
class Misbehaviour:
    """What to do with one request instead of accepting it."""

    status: int = 500
    retry_after: str | None = None
    hang_s: float = 0.0  # sleep before answering: longer than the sender's timeout is a timeout
    accept_first: bool = False  # record the event, then hang/fail: the sender cannot know it arrived
    before_answer: Callable[[tuple[str, int]], None] | None = None  # called with the sender's address


@dataclass(slots=True)
class Received:
    message_id: str
    received_at: float  # time.time() when it was accepted
    body: dict


@dataclass
class ReceiverState:
    secret: str
    misbehave: Callable[[str, dict, int], Misbehaviour | None] | None = None
    accepted: list[Received] = field(default_factory=list)  # first delivery of each webhook-id
    duplicates: list[str] = field(default_factory=list)  # ids delivered again after acceptance
    rejected: list[tuple[int, str]] = field(default_factory=list)  # (status, why) for bad signatures etc.
    requests: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    seen: set[str] = field(default_factory=set)
    on_accept: Callable[[Received], None] | None = None

    def ids(self) -> list[str]:
        with self.lock:
            return [r.message_id for r in self.accepted]


def _handler_for(state: ReceiverState) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as a production gateway would

        def setup(self) -> None:
            super().setup()
            # Answer each request at once: without this, Nagle's algorithm and the client's
            # delayed ACK hold every keep-alive response back by tens of milliseconds.
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def log_message(self, format, *args):  # noqa: A002 - quiet: tests print what they need
            return

        def _answer(self, status: int, text: str = "", headers: dict[str, str] | None = None) -> None:
            body = text.encode()
            try:
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True  # the sender gave up (timeout) or died: nothing to answer

        def do_POST(self) -> None:  # noqa: N802 - http.server naming
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with state.lock:
                state.requests += 1
                number = state.requests
            try:
                body = verify(secret=state.secret, body=raw, headers={k.lower(): v for k, v in self.headers.items()})
            except WebhookVerificationError as exc:
                status = 400 if "timestamp" in str(exc).lower() else 401
                with state.lock:
                    state.rejected.append((status, str(exc)))
                self._answer(status, f"signature check failed: {exc}")
                return
            message_id = self.headers["webhook-id"]
            if state.misbehave is not None and (plan := state.misbehave(message_id, body, number)) is not None:
                if plan.accept_first:
                    self._accept(message_id, body)
                if plan.before_answer is not None:
                    plan.before_answer(self.client_address)
                if plan.hang_s:
                    time.sleep(plan.hang_s)
                self._answer(plan.status, "scripted failure", {"Retry-After": plan.retry_after} if plan.retry_after else None)
                return
            received = self._accept(message_id, body)
            self._answer(204 if received is not None else 200)

        def _accept(self, message_id: str, body: dict) -> Received | None:
            """Record the first delivery of an id; count later ones as duplicates (deduped)."""
            with state.lock:
                if message_id in state.seen:
                    state.duplicates.append(message_id)
                    return None
                state.seen.add(message_id)
                received = Received(message_id, time.time(), body)
                state.accepted.append(received)
            if state.on_accept is not None:
                state.on_accept(received)
            return received

    return Handler


class WebhookReceiver:
    """``with WebhookReceiver(secret) as receiver: receiver.url ...`` — a server thread on 127.0.0.1."""

    def __init__(self, secret: str, *, host: str = "127.0.0.1", port: int = 0, misbehave=None) -> None:
        self.state = ReceiverState(secret=secret, misbehave=misbehave)
        self.server = ThreadingHTTPServer((host, port), _handler_for(self.state))
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, name="webhook-receiver", daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/hooks/scada"

    def __enter__(self) -> WebhookReceiver:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def wait_for(self, count: int, *, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.state.accepted) >= count:
                return True
            time.sleep(0.02)
        return len(self.state.accepted) >= count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Reference Standard Webhooks receiver: verifies, dedupes, prints each event.")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--secret", required=True)
    args = parser.parse_args(argv)
    receiver = WebhookReceiver(args.secret, port=args.port)
    out_lock = threading.Lock()

    def print_event(received: Received) -> None:
        line = json.dumps({"webhook-id": received.message_id, **received.body}) + "\n"
        with out_lock:  # handler threads must not interleave their lines
            sys.stdout.write(line)
            sys.stdout.flush()

    receiver.state.on_accept = print_event
    print(f"listening on {receiver.url}", flush=True)
    with receiver:
        try:
            receiver.thread.join()
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
