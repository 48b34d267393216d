"""The metric families codex-relay exposes on `GET /metrics`, by type: the names the alert rules,
the dashboard and the end-to-end checks may use (docs/observability.md describes each).

Names are as registered, after the `codex_relay_` prefix; Prometheus sees a counter as
`<name>_total` and a histogram as `<name>_bucket`, `_sum` and `_count`.
"""

import re

PREFIX = "codex_relay_"

COUNTERS = [
    "requests", "streams",
    "tenant_requests", "tenant_tokens", "limiter_rejections",
    "key_requests", "key_tokens", "key_limiter_rejections",
    "usage_writer_errors", "store_errors", "capture_records",
    "account_upstream_calls", "account_failovers", "account_breaker_transitions",
    "account_refreshes", "pool_conversations_moved",
    "audit_rows_written", "audit_rows_lost", "audit_write_errors",
]

HISTOGRAMS = ["request_duration_seconds", "time_to_first_byte_seconds"]

GAUGES = [
    "requests_in_flight", "model_catalog_age_seconds",
    "account_info", "account_state", "account_calls_in_flight",
    "account_access_token_expiry_timestamp_seconds", "account_cooldown_until_timestamp_seconds",
    "account_quota_used_percent", "account_quota_window_seconds",
    "account_quota_reset_timestamp_seconds",
    "pool_accounts", "pool_usable_accounts", "pool_conversations_bound",
    "audit_rows_pending", "build_info",
]

# Only with `metrics.per_key` on.
PER_KEY = ["key_requests", "key_tokens", "key_limiter_rejections"]


def series_names():
    """Every metric name a query may select, as Prometheus stores it."""
    names = {PREFIX + name + "_total" for name in COUNTERS}
    names |= {PREFIX + name + suffix for name in HISTOGRAMS
              for suffix in ("_bucket", "_sum", "_count")}
    names |= {PREFIX + name for name in GAUGES}
    return names


# A metric name in a query; not the tail of a recording rule's name (`instance:codex_relay_…`).
NAME_IN_QUERY = re.compile(r"(?<![\w:])" + PREFIX + r"[a-z0-9_]+")


def unknown_names(query):
    """The `codex_relay_` names in a PromQL query that no family of the contract exposes."""
    known = series_names()
    return sorted({name for name in NAME_IN_QUERY.findall(query) if name not in known})
