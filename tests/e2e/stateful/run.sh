#!/usr/bin/env bash
# Stateful Responses clients against a running relay (tests/e2e/run.sh starts it, over the mock
# upstream that refuses item references, previous_response_id and reasoning without its
# encrypted content as the backend does): the Vercel AI SDK (node:test) and the OpenAI Agents SDK
# for Python. Needs RELAY_BASE_URL and RELAY_API_KEY; installs the clients first (setup.sh).
# Prints one `e2e stateful: PASS|FAIL` line per client; exits non-zero if any failed.
set -euo pipefail

cd "$(dirname "$0")/../../.."
: "${RELAY_BASE_URL:?RELAY_BASE_URL must name the /v1 base of the relay}"
: "${RELAY_API_KEY:?RELAY_API_KEY must be a key of that relay}"
export RELAY_BASE_URL RELAY_API_KEY

bash tests/e2e/stateful/setup.sh
failed=0

# The test file runs from the install folder, where its imports resolve.
cp tests/e2e/stateful/vercel_ai.test.mjs .e2e/stateful-node/
if timeout 300 node --test --test-reporter=spec .e2e/stateful-node/vercel_ai.test.mjs; then
  echo "e2e stateful: PASS Vercel AI SDK (generateText, streamText, tool steps, multi-turn chat)"
else
  echo "e2e stateful: FAIL Vercel AI SDK"
  failed=1
fi

if timeout 300 .e2e/agents-venv/bin/python tests/e2e/stateful/agents_sdk.py; then
  echo "e2e stateful: PASS OpenAI Agents SDK (Runner.run, Runner.run_streamed, previous_response_id)"
else
  echo "e2e stateful: FAIL OpenAI Agents SDK"
  failed=1
fi
exit "$failed"
