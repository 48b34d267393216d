"""Responses over WebSocket through the relay, with a real WebSocket client library (tests/e2e/
ws_client.py): a turn, a follow-up that sends only new input with `previous_response_id`, a
prewarm, error frames, an oversize frame, the idle timeout, and failover before the first output
(run.sh makes an always-overloaded account the pool's first choice, so turns only complete when
the relay moves them). Run by tests/e2e/run.sh, which passes RELAY_BASE_URL and RELAY_API_KEY and
sets `websocket.idle_timeout_secs` to 10."""

from __future__ import annotations

import time

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from ws_client import ANSWER, answer_text, create, open_socket, read_turn, turn


def kinds(events):
    return [event["type"] for event in events]


def test_a_turn_and_a_follow_up_on_one_connection():
    with open_socket() as socket:
        first = turn(socket, create("say hi"))
        assert kinds(first)[-1] == "response.completed", kinds(first)
        assert answer_text(first) == ANSWER
        response_id = first[-1]["response"]["id"]
        second = turn(socket, create("and again", previous_response_id=response_id))
        assert kinds(second)[-1] == "response.completed", second[-1]
        assert answer_text(second) == ANSWER


def test_the_caller_sees_its_own_rate_limits_not_an_accounts():
    with open_socket() as socket:
        events = turn(socket, create("say hi"))
        limits = [e for e in events if e["type"] == "codex.rate_limits"]
        assert len(limits) == 1, kinds(events)
        # The backend's event names the account's plan ("plus" in the mock); the relay's, which
        # replaces it, names none: the numbers are the caller's quotas and the pool's headroom.
        assert limits[0]["plan_type"] is None, limits[0]
        assert kinds(events)[-1] == "response.completed"


def test_a_prewarm_then_a_turn_that_continues_it():
    with open_socket() as socket:
        warmed = turn(socket, create("warm up", generate=False))
        assert kinds(warmed) == ["response.created", "response.completed"], kinds(warmed)
        assert warmed[-1]["response"]["output"] == []
        # A prewarm that reached the always-overloaded account failed there and moved, as a turn
        # does, so the connection that knows it is the healthy account's: the follow-up stays.
        follow = turn(socket, create("say hi", previous_response_id=warmed[-1]["response"]["id"]))
        assert kinds(follow)[-1] == "response.completed", follow[-1]
        assert answer_text(follow) == ANSWER


def test_a_previous_response_the_connection_does_not_know_is_not_found():
    with open_socket() as socket:
        events = turn(socket, create("hi", previous_response_id="resp_from_another_connection"))
        assert events == [events[0]] and events[0]["type"] == "error", events
        assert events[0]["status"] == 400
        assert events[0]["error"]["code"] == "previous_response_not_found"
        # The client resends its whole conversation and goes on.
        assert kinds(turn(socket, create("say hi")))[-1] == "response.completed"


def test_refused_turns_are_error_frames_and_the_connection_goes_on():
    with open_socket() as socket:
        unknown = turn(socket, create("hi", model="no-such-model"))
        assert unknown[0]["type"] == "error" and unknown[0]["status"] == 404
        assert unknown[0]["error"]["code"] == "model_not_found"
        wrong = turn(socket, {"type": "response.cancel"})
        assert wrong[0]["type"] == "error" and wrong[0]["status"] == 400
        assert kinds(turn(socket, create("say hi")))[-1] == "response.completed"


def test_a_frame_of_16_mib_is_refused_and_the_connection_closed_with_1009():
    with open_socket() as socket:
        socket.send('{"type":"response.create","model":"gpt-5.5","input":"' + "x" * (16 << 20) + '"}')
        events = read_turn(socket)
        assert events[0]["error"]["code"] == "frame_too_large", events
        with pytest.raises(ConnectionClosed) as closed:
            socket.recv(timeout=10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009


def test_an_idle_connection_is_closed_with_1001():
    with open_socket() as socket:
        started = time.monotonic()
        with pytest.raises(ConnectionClosed) as closed:
            socket.recv(timeout=30)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
        assert closed.value.rcvd.reason == "idle timeout"
        assert 9 <= time.monotonic() - started < 25


def test_handshakes_the_relay_does_not_serve():
    with pytest.raises(InvalidStatus) as unknown:
        open_socket(beta="responses_websockets=2099-01-01")
    assert unknown.value.response.status_code == 426
    with pytest.raises(InvalidStatus) as wrong_key:
        open_socket(key="sk-not-a-relay-key")
    assert wrong_key.value.response.status_code == 401
