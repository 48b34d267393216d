// The OpenAI Node SDK against codex-relay (run by tests/e2e/clients.sh with `node --test`, after
// it is copied beside its node_modules in .e2e/node-sdk). Reads RELAY_BASE_URL and RELAY_API_KEY.
// The SDK checks types only at compile time, so `strict()` checks at run time the fields its
// types declare required (those the Python SDK's strict validation requires).
import assert from "node:assert/strict";
import { test } from "node:test";

import OpenAI, { AuthenticationError, BadRequestError, NotFoundError } from "openai";

const baseURL = process.env.RELAY_BASE_URL;
const apiKey = process.env.RELAY_API_KEY;
assert.ok(baseURL && apiKey, "RELAY_BASE_URL and RELAY_API_KEY must be set");

const ANSWER = "Hello from the mock upstream.";
const MODEL = "gpt-5.5";
const client = new OpenAI({ baseURL, apiKey, maxRetries: 0, timeout: 60_000 });

function has(object, fields, what) {
  for (const field of fields) {
    assert.ok(object !== null && typeof object === "object" && field in object, `${what} lacks ${field}`);
  }
}

// The required fields of a Response, its usage, and its output items.
function strict(response) {
  has(response, ["id", "created_at", "model", "object", "output", "parallel_tool_calls", "tool_choice", "tools"], "Response");
  assert.equal(response.object, "response");
  assert.equal(typeof response.created_at, "number");
  assert.ok(Array.isArray(response.output));
  const usage = response.usage;
  has(usage, ["input_tokens", "input_tokens_details", "output_tokens", "output_tokens_details", "total_tokens"], "usage");
  has(usage.input_tokens_details, ["cached_tokens"], "usage.input_tokens_details");
  has(usage.output_tokens_details, ["reasoning_tokens"], "usage.output_tokens_details");
  for (const n of [usage.input_tokens, usage.output_tokens, usage.total_tokens]) {
    assert.ok(Number.isInteger(n), "usage counts are integers");
  }
  for (const item of response.output) has(item, ["type", "id"], "output item");
  return response;
}

test("non-streaming create answers a strict Response with output_text", async () => {
  const response = strict(await client.responses.create({ model: MODEL, input: "say hi" }));
  assert.equal(response.output_text, ANSWER);
  assert.equal(response.status, "completed");
});

test("streaming create yields numbered events ending in response.completed", async () => {
  const stream = await client.responses.create({ model: MODEL, input: "say hi", stream: true });
  const events = [];
  for await (const event of stream) events.push(event);
  assert.equal(events[0].type, "response.created");
  let last = -1;
  for (const event of events) {
    has(event, ["type", "sequence_number"], "event");
    assert.ok(event.sequence_number > last, "sequence numbers increase");
    last = event.sequence_number;
  }
  const completed = events.at(-1);
  assert.equal(completed.type, "response.completed");
  strict(completed.response);
  const text = events.filter((e) => e.type === "response.output_text.delta").map((e) => e.delta).join("");
  assert.equal(text, ANSWER);
});

test("the stream helper assembles the final response", async () => {
  const stream = client.responses.stream({ model: MODEL, input: "say hi" });
  const final = strict(await stream.finalResponse());
  assert.equal(final.output_text, ANSWER);
});

test("a function tool call round trip", async () => {
  const tools = [{ type: "function", name: "lookup", description: "Looks something up.", parameters: { type: "object", properties: {} }, strict: false }];
  const first = strict(await client.responses.create({ model: MODEL, input: "please use a tool", tools }));
  const call = first.output.find((item) => item.type === "function_call");
  assert.ok(call, "the model calls the tool");
  const second = strict(
    await client.responses.create({
      model: MODEL,
      tools,
      input: [
        { role: "user", content: "please use a tool" },
        ...first.output,
        { type: "function_call_output", call_id: call.call_id, output: "42" },
      ],
    }),
  );
  assert.equal(second.output_text, "Tool result received.");
});

test("models list and retrieve", async () => {
  const models = [];
  for await (const model of client.models.list()) models.push(model);
  assert.ok(models.length > 0);
  for (const model of models) has(model, ["id", "created", "object", "owned_by"], "Model");
  const one = await client.models.retrieve(models[0].id);
  assert.equal(one.id, models[0].id);
});

test("compact answers the compacted conversation", async () => {
  const compacted = await client.responses.compact({
    model: MODEL,
    input: [{ role: "user", content: "first" }, { role: "user", content: "second" }],
  });
  assert.equal(compacted.object, "response.compaction");
  has(compacted, ["id", "created_at", "output", "usage"], "CompactedResponse");
  const kinds = compacted.output.map((item) => (item.type === "message" ? item.role : item.type));
  assert.deepEqual(kinds, ["user", "user", "compaction"]);
});

async function rejection(promise) {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  assert.fail("the call should have failed");
}

test("errors arrive as the SDK's typed errors with OpenAI's shape", async () => {
  const wrongKey = new OpenAI({ baseURL, apiKey: "sk-wrong", maxRetries: 0 });
  const unauthorized = await rejection(wrongKey.responses.create({ model: MODEL, input: "hi" }));
  assert.ok(unauthorized instanceof AuthenticationError);
  assert.equal(unauthorized.status, 401);
  assert.equal(unauthorized.code, "invalid_api_key");

  const unknown = await rejection(client.responses.create({ model: "no-such-model", input: "hi" }));
  assert.ok(unknown instanceof NotFoundError);
  assert.equal(unknown.code, "model_not_found");
  assert.equal(unknown.param, "model");

  const stored = await rejection(client.responses.retrieve("resp_123"));
  assert.ok(stored instanceof NotFoundError);
  assert.equal(stored.code, "response_not_found");
  assert.equal(stored.type, "invalid_request_error");

  const file = await rejection(
    client.responses.create({
      model: MODEL,
      input: [{ role: "user", content: [{ type: "input_image", file_id: "file-1", detail: "auto" }] }],
    }),
  );
  assert.ok(file instanceof BadRequestError);
  assert.equal(file.param, "input[0].content[0].file_id");
});
