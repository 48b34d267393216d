"""The real OpenAI Python SDK against a running codex-relay.

These tests run inside tests/e2e/run.sh, which starts the mock upstream and the relay, creates an
API key and passes RELAY_BASE_URL (e.g. http://127.0.0.1:PORT/v1) and RELAY_API_KEY. The mock
upstream answers every prompt with a fixed text, and with a `get_weather` function call when the
prompt asks it to use a tool.
"""

from __future__ import annotations

import functools
import os
from typing import Any, Callable

import openai
import pydantic
import pytest
from openai import OpenAI

MODEL = "gpt-5.5"
ANSWER = "Hello from the mock upstream."
WEATHER_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "Get the current weather for the user's location.",
    "parameters": {"type": "object", "properties": {}},
}


@pytest.fixture(scope="session")
def relay() -> tuple[str, str]:
    base_url = os.environ.get("RELAY_BASE_URL")
    api_key = os.environ.get("RELAY_API_KEY")
    if not base_url or not api_key:
        pytest.fail(
            "RELAY_BASE_URL and RELAY_API_KEY are not set: these tests need a running relay; "
            "run them through `bash tests/e2e/run.sh`",
            pytrace=False,
        )
    return base_url, api_key


@pytest.fixture(scope="session", params=["lenient", "strict"])
def client(request: pytest.FixtureRequest, relay: tuple[str, str]) -> OpenAI:
    """The SDK client as users create it, and one that validates every response strictly."""
    base_url, api_key = relay
    return OpenAI(
        base_url=base_url,
        api_key=api_key,
        max_retries=0,
        timeout=60,
        _strict_response_validation=request.param == "strict",
    )


def readable_errors(test: Callable[..., Any]) -> Callable[..., Any]:
    """Turns the SDK's strict-validation error (one line per member of a large union) into a
    short failure that names the rejected event or object and the fields at fault."""

    @functools.wraps(test)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return test(*args, **kwargs)
        except openai.APIResponseValidationError as err:
            message = describe_validation_error(err)
        # Outside the except block, so that the failure does not chain the SDK's long error.
        pytest.fail(message, pytrace=False)

    return wrapper


def describe_validation_error(err: openai.APIResponseValidationError) -> str:
    body = err.body
    what = (body.get("type") or body.get("object")) if isinstance(body, dict) else None
    cause = err.__cause__
    details = [str(cause)]
    if isinstance(cause, pydantic.ValidationError):
        errors = cause.errors()
        # In a union, the members whose `type` literal does not match are not the culprit.
        wrong_members = {
            e["loc"][0]
            for e in errors
            if e["type"] == "literal_error" and len(e["loc"]) == 2 and e["loc"][1] == "type"
        }
        details = [
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']} (got {e.get('input')!r:.200})"
            for e in errors
            if not e["loc"] or e["loc"][0] not in wrong_members
        ] or [str(cause)]
    return f"strict response validation rejected {what or 'a response'} from the relay:\n  " + "\n  ".join(
        details[:20]
    )


def is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def assert_usage(usage: object) -> None:
    assert usage is not None, "response has no usage"
    for field in ("input_tokens", "output_tokens", "total_tokens"):
        assert is_int(getattr(usage, field)), f"usage.{field} = {getattr(usage, field)!r}"
    assert is_int(usage.input_tokens_details.cached_tokens)
    assert is_int(usage.output_tokens_details.reasoning_tokens)


def assert_completed_response(response: openai.types.responses.Response) -> None:
    assert isinstance(response.id, str) and response.id, f"id = {response.id!r}"
    assert isinstance(response.model, str) and response.model, f"model = {response.model!r}"
    assert response.object == "response"
    assert response.status == "completed"
    assert response.output_text == ANSWER
    assert_usage(response.usage)


@readable_errors
def test_create_non_streaming(client: OpenAI) -> None:
    response = client.responses.create(
        model=MODEL,
        input=[{"role": "user", "content": "say hi"}],
    )
    assert_completed_response(response)
    messages = [item for item in response.output if item.type == "message"]
    assert messages, f"no message item in output: {response.output!r}"
    assert messages[-1].role == "assistant"


@readable_errors
def test_non_streaming_reply_is_json(client: OpenAI) -> None:
    raw = client.responses.with_raw_response.create(model=MODEL, input="say hi")
    assert raw.status_code == 200
    assert raw.headers.get("content-type", "").startswith("application/json"), raw.headers
    assert raw.parse().output_text == ANSWER


@readable_errors
def test_create_streaming(client: OpenAI) -> None:
    stream = client.responses.create(
        model=MODEL,
        input=[{"role": "user", "content": "say hi"}],
        stream=True,
    )
    with stream:
        events = list(stream)
    types = [event.type for event in events]
    assert types, "the stream carried no event"
    assert types[0] == "response.created", types
    assert types[-1] == "response.completed", types

    seqs = [event.sequence_number for event in events]
    assert all(is_int(s) for s in seqs), seqs
    assert all(a < b for a, b in zip(seqs, seqs[1:])), f"sequence numbers not increasing: {seqs}"

    deltas = [event for event in events if event.type == "response.output_text.delta"]
    assert deltas, f"no text delta: {types}"
    assert "".join(event.delta for event in deltas) == ANSWER

    # Order the SDK stream helpers rely on: the item is announced before its content, and
    # finished before the response completes.
    first_delta = types.index("response.output_text.delta")
    last_delta = len(types) - 1 - types[::-1].index("response.output_text.delta")
    assert "response.output_item.added" in types[:first_delta], types
    assert "response.output_item.done" in types[last_delta:], types
    if "response.output_text.done" in types:
        assert types.index("response.output_text.done") > last_delta, types

    completed = events[-1].response
    assert_completed_response(completed)


@readable_errors
def test_stream_helper(client: OpenAI) -> None:
    deltas: list[str] = []
    snapshots: list[str] = []
    with client.responses.stream(
        model=MODEL,
        input=[{"role": "user", "content": "say hi"}],
    ) as stream:
        for event in stream:
            if event.type == "response.output_text.delta":
                deltas.append(event.delta)
                snapshots.append(event.snapshot)
        final = stream.get_final_response()
    assert "".join(deltas) == ANSWER
    assert snapshots and snapshots[-1] == ANSWER
    assert final.output_text == ANSWER
    assert_usage(final.usage)


@readable_errors
def test_models_list(client: OpenAI) -> None:
    models = list(client.models.list())
    assert models, "the model list is empty"
    ids = [model.id for model in models]
    assert MODEL in ids, ids
    for model in models:
        assert isinstance(model.id, str) and model.id
        assert is_int(model.created), model
        assert model.object == "model", model
        assert isinstance(model.owned_by, str) and model.owned_by, model


@readable_errors
def test_models_retrieve(client: OpenAI) -> None:
    model = client.models.retrieve(MODEL)
    assert model.id == MODEL
    assert model.object == "model"
    assert is_int(model.created)
    assert isinstance(model.owned_by, str) and model.owned_by


@readable_errors
def test_parameters_the_backend_rejects_are_normalized(client: OpenAI) -> None:
    response = client.responses.create(
        model=MODEL,
        input="say hi",
        instructions="You are a friendly assistant.",
        max_output_tokens=50,
        temperature=0.2,
    )
    assert_completed_response(response)


def test_wrong_api_key_is_401(relay: tuple[str, str]) -> None:
    base_url, api_key = relay
    wrong = OpenAI(base_url=base_url, api_key="sk-e2e-wrong-" + "x" * 24, max_retries=0, timeout=30)
    assert wrong.api_key != api_key
    with pytest.raises(openai.AuthenticationError) as excinfo:
        wrong.responses.create(model=MODEL, input="say hi")
    assert excinfo.value.status_code == 401
    assert isinstance(excinfo.value.body, dict) and excinfo.value.body.get("message"), excinfo.value.body

    with pytest.raises(openai.AuthenticationError) as excinfo:
        wrong.models.list()
    assert excinfo.value.status_code == 401


@readable_errors
def test_unknown_model_is_404(client: OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as excinfo:
        client.responses.create(model="no-such-model-e2e", input="say hi")
    assert excinfo.value.status_code == 404
    assert isinstance(excinfo.value.body, dict) and excinfo.value.body.get("message"), excinfo.value.body


@readable_errors
def test_tool_call(client: OpenAI) -> None:
    response = client.responses.create(
        model=MODEL,
        input="please use a tool",
        tools=[WEATHER_TOOL],
    )
    calls = [item for item in response.output if item.type == "function_call"]
    assert calls, f"no function_call item in output: {response.output!r}"
    call = calls[0]
    assert call.name == "get_weather"
    assert isinstance(call.call_id, str) and call.call_id
    assert isinstance(call.arguments, str)
