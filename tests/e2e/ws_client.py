"""A Responses-over-WebSocket client for the end-to-end tests, on the `websockets` library (its
synchronous client): what the Codex CLI does on the wire, driven turn by turn."""

from __future__ import annotations

import json
import os
from typing import Any

from websockets.sync.client import ClientConnection, connect

BETA = "responses_websockets=2026-02-06"
MODEL = "gpt-5.5"
ANSWER = "Hello from the mock upstream."
TERMINAL = {"response.completed", "response.failed", "response.incomplete", "error"}


def relay_ws_url() -> str:
    base = os.environ["RELAY_BASE_URL"].rstrip("/")
    return base.replace("http://", "ws://", 1) + "/responses"


def open_socket(beta: str | None = BETA, key: str | None = None) -> ClientConnection:
    headers = {"Authorization": "Bearer " + (key or os.environ["RELAY_API_KEY"])}
    if beta:
        headers["OpenAI-Beta"] = beta
    # The relay's frames can be large (a completed response carries every output item).
    return connect(relay_ws_url(), additional_headers=headers, max_size=None, open_timeout=10)


def create(text: str, **fields: Any) -> dict[str, Any]:
    message = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}
    return {"type": "response.create", "model": MODEL, "input": [message], "stream": True,
            "store": False, **fields}


def turn(socket: ClientConnection, frame: dict[str, Any], timeout: float = 30) -> list[dict[str, Any]]:
    """Sends one frame and returns the events up to the turn's terminal one."""
    socket.send(json.dumps(frame))
    return read_turn(socket, timeout)


def read_turn(socket: ClientConnection, timeout: float = 30) -> list[dict[str, Any]]:
    events = []
    while True:
        message = socket.recv(timeout=timeout)
        assert isinstance(message, str), f"a binary frame: {message!r}"
        event = json.loads(message)
        events.append(event)
        if event.get("type") in TERMINAL:
            return events


def answer_text(events: list[dict[str, Any]]) -> str:
    """The text of the output messages, read as Codex reads it: from `output_item.done`."""
    texts = []
    for event in events:
        item = event.get("item") or {}
        if event.get("type") == "response.output_item.done" and item.get("type") == "message":
            texts += [part.get("text", "") for part in item.get("content", [])]
    return "".join(texts)
