// The Vercel AI SDK (`ai` + `@ai-sdk/openai`, Responses model, default settings) through the relay.
// With its defaults the SDK treats `store` as true and sends earlier items back as
// `item_reference`s; the relay must expand them from its memory, since the backend (and the mock
// made to refuse as it does) stores nothing. Reads RELAY_BASE_URL and RELAY_API_KEY.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateText, streamText, stepCountIs, tool } from 'ai';
import { createOpenAI } from '@ai-sdk/openai';
import { z } from 'zod';

const HELLO = 'Hello from the mock upstream.';
const TOOL_DONE = 'Tool result received.';

const baseURL = process.env.RELAY_BASE_URL;
const apiKey = process.env.RELAY_API_KEY;
assert.ok(baseURL && apiKey, 'RELAY_BASE_URL and RELAY_API_KEY must be set (tests/e2e/stateful/run.sh)');
const openai = createOpenAI({ baseURL, apiKey });
const model = openai.responses('gpt-5.5');

const tools = {
  getTime: tool({
    description: 'The current time',
    inputSchema: z.object({}),
    execute: async () => '12:00',
  }),
};

test('generateText answers', async () => {
  const result = await generateText({ model, prompt: 'say hi' });
  assert.equal(result.text, HELLO);
});

test('streamText streams the answer', async () => {
  const result = streamText({ model, prompt: 'say hi' });
  let text = '';
  for await (const delta of result.textStream) {
    text += delta;
  }
  assert.equal(text, HELLO);
  assert.equal(await result.finishReason, 'stop');
});

test('a tool round trip over several steps sends the earlier items back by reference', async () => {
  const result = await generateText({
    model,
    tools,
    stopWhen: stepCountIs(5),
    prompt: 'please use a tool to tell the time',
  });
  assert.equal(result.steps.length, 2);
  assert.equal(result.steps[0].toolCalls[0].toolName, 'getTime');
  assert.equal(result.text, TOOL_DONE);
});

test('a streamed tool round trip over several steps', async () => {
  const result = streamText({
    model,
    tools,
    stopWhen: stepCountIs(5),
    prompt: 'please use a tool to tell the time',
  });
  assert.equal(await result.text, TOOL_DONE);
  assert.equal((await result.steps).length, 2);
});

test('a multi-turn chat sends the earlier answer back by reference', async () => {
  const messages = [{ role: 'user', content: 'say hi' }];
  const first = await generateText({ model, messages });
  assert.equal(first.text, HELLO);
  messages.push(...first.response.messages, { role: 'user', content: 'and once more' });
  const second = await generateText({ model, messages });
  assert.equal(second.text, HELLO);
  messages.push(...second.response.messages, { role: 'user', content: 'a third time' });
  const third = streamText({ model, messages });
  assert.equal(await third.text, HELLO);
});
