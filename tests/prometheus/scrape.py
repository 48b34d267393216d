"""The Prometheus run (see README.md beside this file): a real Prometheus scrapes the codex-relay
release binary while requests go through the mock upstream — completions, streams, a failover
away from an account that answers 500, an account that cools after a 429 with its quota headers,
a key past its rate, a token refresh — then every check below asks Prometheus's query API
whether the series exist and count what happened, and its rules API whether the alert rules
loaded and evaluate.

Prints one `prometheus: PASS|FAIL what` line per check (a failed one with its query and what
Prometheus answered) and `prometheus: N passed, M failed`; exits non-zero on any failure.
"""

import argparse
import json
import os
import shutil
import sys
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "adversarial"))

from contract import COUNTERS, GAUGES, HISTOGRAMS, PREFIX  # noqa: E402
from prometheus_server import Prometheus  # noqa: E402
from relay import Relay, free_ports  # noqa: E402

RULES = os.path.join(ROOT, "deploy", "prometheus", "codex-relay.rules.yml")
TENANT = "prometheus-run"
MODEL = "gpt-5.5"
# The address in every login the mock writes; an account's metrics may show it masked, never whole.
MOCK_EMAIL = "dev@example.com"
# How long the checks may take to come true once the requests are done (scrapes, rule runs).
SETTLE_SECS = 20


class ScrapedRelay(Relay):
    """The relay with two accounts the mock scripts (one failing, one capped), preferred so that
    the first requests reach them; a tenant with a key, a key with a tiny rate, a read token."""

    def __init__(self, relay_bin, mock_bin):
        super().__init__(relay_bin, mock_bin)
        self.env["CODEX_RELAY__METRICS__PER_KEY"] = "true"
        self.env["CODEX_RELAY__LOG__LEVEL"] = "info"

    def mock_args(self, auth_dir):
        return ["--write-failing-auth-json", os.path.join(auth_dir, "acct-mock-failing.json"),
                "--write-capped-auth-json", os.path.join(auth_dir, "acct-mock-capped.json")]

    def prepare(self):
        by_login = {os.path.basename(path): account
                    for path, account in zip(self.auth_files, self.accounts)}
        self.failing = by_login["acct-mock-failing.json"]
        self.capped = by_login["acct-mock-capped.json"]
        self.healthy = by_login["acct-bench-1.json"]
        self.cli("account", "set", self.failing, "--priority", "10")
        self.cli("account", "set", self.capped, "--priority", "5")
        self.cli("tenant", "create", TENANT)
        self.team_key = self.cli("key", "create", "--name", "team", "--tenant", TENANT).strip()
        self.limited_key = self.cli("key", "create", "--name", "limited", "--tenant", TENANT,
                                    "--rpm", "1", "--burst", "1").strip()
        self.scrape_token = self.cli("admin-token", "create", "--scope", "read",
                                     "--name", "prometheus").strip()

    def secrets(self):
        found = super().secrets()
        found.update({"the team's API key": self.team_key, "the limited API key": self.limited_key,
                      "the scrape token": self.scrape_token})
        return found


# --- what goes through the relay ---------------------------------------------------------------
def respond(relay, key, prompt, stream):
    body = json.dumps({"model": MODEL, "input": prompt, "stream": stream}).encode()
    status, _, answer = relay.request("POST", "/v1/responses", key=key, body=body)
    return status, answer


def drive(relay, prompt):
    """The traffic the checks count; returns what each step got, for the scenario checks."""
    seen = {}
    # The relay's first request (Relay.start's) and these two completions reach the preferred
    # failing account first (its breaker opens at the third failure), the first one the capped
    # account too (it cools): each fails over to a healthy account.
    seen["completions"] = [respond(relay, relay.team_key, prompt, False)[0] for _ in range(2)]
    seen["streams"] = [respond(relay, relay.team_key, prompt, True) for _ in range(2)]
    seen["limited"] = [respond(relay, relay.limited_key, prompt, False)[0] for _ in range(3)]
    status, _, _ = relay.admin("POST", f"/admin/v1/accounts/{relay.healthy}/refresh")
    seen["refresh"] = status
    return seen


def account_state(relay, account):
    status, _, body = relay.admin("GET", f"/admin/v1/accounts/{account}")
    return json.loads(body).get("state") if status == 200 else f"HTTP {status}"


def scenario_checks(relay, seen):
    """What happened, seen from the client and the admin API: the run itself worked."""
    streams_ok = all(status == 200 and b"response.completed" in body
                     for status, body in seen["streams"])
    failing_state = account_state(relay, relay.failing)
    capped_state = account_state(relay, relay.capped)
    return [
        ("scenario: the completions were answered 200", seen["completions"] == [200, 200],
         f"statuses {seen['completions']}"),
        ("scenario: the streams were answered to their end", streams_ok,
         f"statuses {[s for s, _ in seen['streams']]}"),
        ("scenario: the key past its rate was refused 429", 429 in seen["limited"],
         f"statuses {seen['limited']}"),
        ("scenario: the admin refresh succeeded", seen["refresh"] == 200,
         f"status {seen['refresh']}"),
        ("scenario: the failing account's breaker opened",
         failing_state in ("circuit_open", "circuit_half_open"), f"state {failing_state}"),
        ("scenario: the capped account is cooling", capped_state == "cooling",
         f"state {capped_state}"),
    ]


# --- what Prometheus must show ------------------------------------------------------------------
# (what, PromQL, condition): the check holds when `(PromQL) condition` returns a sample.
# <failing>, <capped>, <healthy> stand for the accounts' ids.
CHECKS = [
    ("Prometheus scrapes the relay with its token", 'up{job="codex-relay"}', "== 1"),
    ("build info", "codex_relay_build_info", "== 1"),
    # Requests (edge).
    ("data-plane 200s are counted",
     'sum(codex_relay_requests_total{plane="data", route="/v1/responses", status="200"})', ">= 5"),
    ("the rate-limited request is counted as a 429",
     'sum(codex_relay_requests_total{plane="data", route="/v1/responses", status="429"})', ">= 1"),
    ("requests carry the resolved model",
     'sum(codex_relay_requests_total{plane="data", model="gpt-5.5"})', ">= 5"),
    ("the scrapes are admin-plane requests",
     'sum(codex_relay_requests_total{plane="admin", route="/metrics", status="200"})', ">= 1"),
    ("request durations are observed",
     'sum(codex_relay_request_duration_seconds_count{plane="data"})', ">= 5"),
    ("times to first byte are observed",
     'sum(codex_relay_time_to_first_byte_seconds_count{model="gpt-5.5"})', ">= 4"),
    ("completed streams are counted", 'sum(codex_relay_streams_total{outcome="completed"})',
     ">= 2"),
    ("nothing is left in flight on the data plane",
     'sum(codex_relay_requests_in_flight{plane="data"})', "== 0"),
    # Governance.
    ("the tenant's requests are counted",
     f'sum(codex_relay_tenant_requests_total{{tenant="{TENANT}"}})', ">= 4"),
    ("the tenant's input tokens are counted",
     f'sum(codex_relay_tenant_tokens_total{{tenant="{TENANT}", kind="input"}})', "> 0"),
    ("the tenant's output tokens are counted",
     f'sum(codex_relay_tenant_tokens_total{{tenant="{TENANT}", kind="output"}})', "> 0"),
    ("the rate rejection is counted for the tenant and the key",
     f'sum(codex_relay_limiter_rejections_total{{tenant="{TENANT}", kind="rate", scope="key"}})',
     ">= 1"),
    ("per-key requests are counted (metrics.per_key)",
     f'sum(codex_relay_key_requests_total{{tenant="{TENANT}"}})', ">= 4"),
    ("per-key rejections are counted (metrics.per_key)",
     'sum(codex_relay_key_limiter_rejections_total{kind="rate"})', ">= 1"),
    ("the usage writer has no errors", "sum(codex_relay_usage_writer_errors_total)", "== 0"),
    ("the model catalog has an age", "max(codex_relay_model_catalog_age_seconds)", ">= 0"),
    # Accounts.
    ("every account has its info", "count(codex_relay_account_info)", "== 5"),
    ("the failing account's 500s are counted",
     'sum(codex_relay_account_upstream_calls_total{account="<failing>", status="500"})', ">= 1"),
    ("upstream 200s are counted", 'sum(codex_relay_account_upstream_calls_total{status="200"})',
     ">= 5"),
    ("requests failed over from the failing account",
     'sum(codex_relay_account_failovers_total{account="<failing>", reason="upstream_status"})',
     ">= 1"),
    ("requests failed over from the capped account",
     'sum(codex_relay_account_failovers_total{account="<capped>", reason="upstream_status"})',
     ">= 1"),
    ("the failing account's breaker opened",
     'sum(codex_relay_account_breaker_transitions_total{account="<failing>", to="open"})', ">= 1"),
    ("the capped account is cooling", 'codex_relay_account_state{account="<capped>", state="cooling"}',
     "== 1"),
    ("exactly one account is cooling", 'count(codex_relay_account_state{state="cooling"} == 1)',
     "== 1"),
    ("each account is in exactly one state",
     "count(sum by (account) (codex_relay_account_state) == 1)", "== 5"),
    ("the capped account cools until a time to come",
     'codex_relay_account_cooldown_until_timestamp_seconds{account="<capped>"} - time()', "> 0"),
    ("the capped account's quota is what the upstream said",
     'codex_relay_account_quota_used_percent{account="<capped>", window="primary"}', "== 100"),
    ("its secondary window too",
     'codex_relay_account_quota_used_percent{account="<capped>", window="secondary"}', "== 42"),
    ("its window length, in seconds",
     'codex_relay_account_quota_window_seconds{account="<capped>", window="primary"}', "== 18000"),
    ("its window resets later",
     'codex_relay_account_quota_reset_timestamp_seconds{account="<capped>", window="primary"}'
     " - time()", "> 0"),
    ("a healthy account's quota is what the mock reports",
     'count(codex_relay_account_quota_used_percent{window="primary"} == 12.5)', ">= 1"),
    ("every access token expires later",
     "count(codex_relay_account_access_token_expiry_timestamp_seconds - time() > 0)", "== 5"),
    ("no upstream call is left in flight", "sum(codex_relay_account_calls_in_flight)", "== 0"),
    ("the admin refresh is counted",
     'sum(codex_relay_account_refreshes_total{account="<healthy>", result="ok"})', ">= 1"),
    # Pool.
    ("the pool counts its accounts", "sum(codex_relay_pool_accounts)", "== 5"),
    ("the pool counts one cooling", 'sum(codex_relay_pool_accounts{state="cooling"})', "== 1"),
    ("the three healthy accounts are usable", "max(codex_relay_pool_usable_accounts)", ">= 3"),
    ("conversations bound are reported", "max(codex_relay_pool_conversations_bound)", ">= 0"),
    ("conversations moved are counted", "max(codex_relay_pool_conversations_moved_total)",
     ">= 0"),
]


def run_checks(prometheus, relay):
    """(what, passed, detail) for every PromQL check."""
    ids = {"<failing>": relay.failing, "<capped>": relay.capped, "<healthy>": relay.healthy}
    results = []
    for what, expr, condition in CHECKS:
        for placeholder, account in ids.items():
            expr = expr.replace(placeholder, account)
        query = f"({expr}) {condition}"
        try:
            passed = bool(prometheus.query(query))
            detail = "" if passed else f"{query} → {observed(prometheus, expr)}"
        except RuntimeError as error:
            passed, detail = False, f"{query} → {error}"
        results.append((what, passed, detail))
    return results


def observed(prometheus, expr):
    samples = prometheus.query(expr)
    if not samples:
        return "no such series"
    return ", ".join(f"{labels or ''} {value:g}" for labels, value in samples[:5])


def rules_check(prometheus):
    rules = prometheus.rules()
    unhealthy = [f"{name}: {health} {error}".strip() for _, name, health, error in rules
                 if health != "ok"]
    return ("the alert rules loaded and evaluate", bool(rules) and not unhealthy,
            f"{len(rules)} rules; not ok: {unhealthy}")


# prometheus-client leaves a family with no series out of the scrape: no store error, no series.
EMPTY_IN_THIS_RUN = ["store_errors"]


def families_check(prometheus):
    """Every family of the contract is declared by the relay (HELP and TYPE reach Prometheus)."""
    declared = prometheus.declared_families()
    names = [PREFIX + n for n in COUNTERS + GAUGES + HISTOGRAMS if n not in EMPTY_IN_THIS_RUN]
    # OpenMetrics names a counter's family without `_total`; some versions keep the sample name.
    missing = [n for n in names if n not in declared and f"{n}_total" not in declared]
    return ("every family of the contract with something to count is declared", not missing,
            f"missing: {missing}")


def no_secret_check(relay, prompt):
    status, _, body = relay.request("GET", "/metrics", port=relay.admin_port,
                                    headers={"Authorization": f"Bearer {relay.scrape_token}"})
    text = body.decode("utf-8", "replace")
    secrets = dict(relay.secrets(), **{"the prompt": prompt, "the accounts' email": MOCK_EMAIL})
    leaks = [what for what, secret in secrets.items() if secret and secret in text]
    return ("no secret, prompt or email in /metrics", status == 200 and not leaks,
            f"status {status}; found {leaks}")


def settle(prometheus, relay, prompt, since):
    """Waits for a scrape after `since`, then until every check holds or SETTLE_SECS pass."""
    deadline = time.monotonic() + SETTLE_SECS
    while True:
        latest = prometheus.query('timestamp(up{job="codex-relay"})')
        scraped_after = bool(latest) and latest[0][1] > since
        results = []
        if scraped_after:
            results = run_checks(prometheus, relay) + [
                rules_check(prometheus), families_check(prometheus),
                no_secret_check(relay, prompt)]
            if all(passed for _, passed, _ in results):
                return results
        if time.monotonic() > deadline:
            return results or [("a scrape after the requests", False,
                                "target: %s %s" % prometheus.target_health())]
        time.sleep(1)


def report(results):
    failed = 0
    for what, passed, detail in results:
        print(f"prometheus: {'PASS' if passed else 'FAIL'} {what}" +
              ("" if passed else f": {detail}"), flush=True)
        failed += not passed
    print(f"prometheus: {len(results) - failed} passed, {failed} failed", flush=True)
    return failed


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--relay", required=True, help="the codex-relay binary (release)")
    parser.add_argument("--mock", required=True, help="the mock_upstream binary")
    args = parser.parse_args()

    relay = ScrapedRelay(args.relay, args.mock)
    prometheus = None
    failed = 1
    try:
        relay.start()
        prometheus_port, = free_ports(1)
        prometheus = Prometheus(os.path.join(relay.tmp, "prometheus"), prometheus_port,
                                f"127.0.0.1:{relay.admin_port}", relay.scrape_token, RULES)
        prometheus.start()
        prompt = f"prometheus-run prompt {uuid.uuid4()}"
        seen = drive(relay, prompt)
        done_at = time.time()
        results = scenario_checks(relay, seen)
        results += settle(prometheus, relay, prompt, done_at)
        failed = report(results)
    finally:
        if prometheus:
            prometheus.stop()
        relay.stop()
        if failed:
            print(f"prometheus: logs of the run are in {relay.tmp}", flush=True)
        else:
            shutil.rmtree(relay.tmp, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
