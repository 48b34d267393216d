"""The OpenAI Python SDK through codex-relay.

    pip install openai
    RELAY_API_KEY=sk-relay-... python examples/clients/openai_sdk.py
"""

import os

from openai import OpenAI

client = OpenAI(
    base_url=os.environ.get("RELAY_BASE_URL", "http://127.0.0.1:8080/v1"),
    api_key=os.environ["RELAY_API_KEY"],
)

# Non-streaming: the relay streams from the Codex backend and assembles one Response.
response = client.responses.create(model="gpt-5.5", input="Say hello in five words.")
print(response.output_text)

# Streaming: upstream events are forwarded as they arrive.
with client.responses.stream(model="gpt-5.5", input="Count to three.") as stream:
    for event in stream:
        if event.type == "response.output_text.delta":
            print(event.delta, end="", flush=True)
    print()

print([model.id for model in client.models.list()])
