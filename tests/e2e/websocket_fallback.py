"""Run by tests/e2e/run.sh after it restarted the mock upstream with WebSockets off (it answers
the upgrade with 426): the relay serves WebSocket turns over HTTP streaming and reframes the
events, and the client cannot tell. Collected only when named on pytest's command line."""

from __future__ import annotations

from ws_client import ANSWER, answer_text, create, open_socket, turn


def test_turns_are_served_over_http_when_the_upstream_refuses_websockets():
    with open_socket() as socket:
        for _ in range(2):
            events = turn(socket, create("say hi"))
            kinds = [event["type"] for event in events]
            assert kinds[-1] == "response.completed", kinds
            assert "response.created" in kinds and "response.output_item.done" in kinds
            assert answer_text(events) == ANSWER
        warmed = turn(socket, create("warm up", generate=False))
        assert [e["type"] for e in warmed] == ["response.created", "response.completed"]
