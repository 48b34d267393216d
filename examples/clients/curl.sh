#!/usr/bin/env bash
# codex-relay with plain curl. RELAY_API_KEY from `codex-relay key create --name <you>`.
set -euo pipefail
relay=${RELAY_URL:-http://127.0.0.1:8080}

curl -sS "$relay/v1/models" -H "Authorization: Bearer $RELAY_API_KEY"

# Streaming (server-sent events, forwarded as they arrive).
curl -sS -N "$relay/v1/responses" -H "Authorization: Bearer $RELAY_API_KEY" \
  -H 'Content-Type: application/json' \
  -d '{"model": "gpt-5.5", "input": "Say hi", "stream": true}'

# Non-streaming (one JSON Response object).
curl -sS "$relay/v1/responses" -H "Authorization: Bearer $RELAY_API_KEY" \
  -H 'Content-Type: application/json' \
  -d '{"model": "gpt-5.5", "input": "Say hi"}'
