"""The OpenAI Agents SDK for Python through the relay: a tool loop with `Runner.run` and
`Runner.run_streamed`, and a second turn chained with `previous_response_id`. The SDK sends the
reasoning items it received back on the next model call, and asks for no encrypted content
itself. Reads RELAY_BASE_URL and RELAY_API_KEY; exits non-zero on the first failure."""

import asyncio
import os
import sys

from agents import Agent, OpenAIResponsesModel, Runner, function_tool, set_tracing_disabled
from openai import AsyncOpenAI

TOOL_DONE = "Tool result received."
HELLO = "Hello from the mock upstream."


@function_tool
def get_time() -> str:
    """The current time."""
    return "12:00"


def agent() -> Agent:
    client = AsyncOpenAI(base_url=os.environ["RELAY_BASE_URL"], api_key=os.environ["RELAY_API_KEY"])
    model = OpenAIResponsesModel(model="gpt-5.5", openai_client=client)
    return Agent(name="timekeeper", instructions="Answer briefly.", model=model, tools=[get_time])


def tool_calls(result) -> int:
    return sum(1 for item in result.new_items if item.type == "tool_call_item")


async def run_tool_loop() -> None:
    result = await Runner.run(agent(), "please use a tool to tell the time")
    assert tool_calls(result) == 1, result.new_items
    assert result.final_output == TOOL_DONE, result.final_output
    # The next turn chains on the last response instead of resending the conversation.
    follow_up = await Runner.run(agent(), "say hi", previous_response_id=result.last_response_id)
    assert follow_up.final_output == HELLO, follow_up.final_output


async def run_streamed_tool_loop() -> None:
    result = Runner.run_streamed(agent(), "please use a tool to tell the time")
    async for _event in result.stream_events():
        pass
    assert tool_calls(result) == 1, result.new_items
    assert result.final_output == TOOL_DONE, result.final_output


async def main() -> int:
    set_tracing_disabled(True)  # the tests talk to loopback only
    failed = 0
    for name, case in [("Runner.run tool loop", run_tool_loop), ("Runner.run_streamed tool loop", run_streamed_tool_loop)]:
        try:
            await case()
            print(f"agents: PASS {name}")
        except Exception as error:  # noqa: BLE001 - every failure is reported the same way
            failed += 1
            print(f"agents: FAIL {name}: {type(error).__name__}: {error}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
