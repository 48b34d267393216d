#!/usr/bin/env bash
# Static checks of what deploy/ ships for monitoring (seconds; CI runs it):
#   the alert rules: `promtool check rules`, then their unit tests (`promtool test rules`);
#   the Grafana dashboard and the rules: lint_deploy.py (importable JSON, every query parses,
#   only families codex-relay exposes).
# Installs Prometheus and promtool first when they are missing (setup.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."

bash tests/prometheus/setup.sh
promtool check rules deploy/prometheus/codex-relay.rules.yml
# promtool resolves rule_files relative to the test file's folder.
promtool test rules deploy/prometheus/codex-relay.rules.test.yml
python3 tests/prometheus/lint_deploy.py
