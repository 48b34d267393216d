"""A real Prometheus (the Debian package's binary), started on a free loopback port for the
Prometheus run: scraping the relay's admin `GET /metrics` every second with an admin token read
from a file (`authorization.credentials_file`, as docs/observability.md tells operators), and
evaluating the project's rule file. Owns its process, its configuration and its data folder, and
reads answers through Prometheus's HTTP API. Standard library only.
"""

import http.client
import json
import os
import signal
import subprocess
import time
import urllib.parse

# As often as Prometheus allows in practice: the run waits for scrapes, not for minutes.
SCRAPE_INTERVAL = "1s"

CONFIG = """\
global:
  scrape_interval: {interval}
  evaluation_interval: {interval}
rule_files:
  - {rules}
scrape_configs:
  - job_name: codex-relay
    metrics_path: /metrics
    authorization:
      credentials_file: {token_file}
    static_configs:
      - targets: ["{target}"]
"""


class Prometheus:
    def __init__(self, folder, port, target, token, rules):
        self.folder = folder
        self.port = port
        self.proc = None
        os.makedirs(folder, exist_ok=True)
        token_file = os.path.join(folder, "relay.token")
        with open(os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
            f.write(token)
        self.config = os.path.join(folder, "prometheus.yml")
        with open(self.config, "w") as f:
            f.write(CONFIG.format(interval=SCRAPE_INTERVAL, rules=json.dumps(rules),
                                  token_file=json.dumps(token_file), target=target))

    def start(self):
        log = open(os.path.join(self.folder, "prometheus.log"), "w")
        self.proc = subprocess.Popen(
            ["prometheus", f"--config.file={self.config}",
             f"--storage.tsdb.path={os.path.join(self.folder, 'data')}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
            stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"prometheus exited ({self.proc.returncode}); see {log.name}")
            try:
                if self._get("/-/ready")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"prometheus was not ready within 30 s; see {log.name}")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    # --- the HTTP API ----------------------------------------------------------------------
    def _get(self, path):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def api(self, path, **params):
        """The `data` of an API answer; raises on an error answer."""
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        status, body = self._get(f"/api/v1/{path}{query}")
        answer = json.loads(body)
        if status != 200 or answer.get("status") != "success":
            raise RuntimeError(f"/api/v1/{path}: {status} {answer.get('error', body[:200])}")
        return answer["data"]

    def query(self, promql):
        """An instant query's samples as (labels, value) pairs."""
        data = self.api("query", query=promql)
        if data["resultType"] == "scalar":
            return [({}, float(data["result"][1]))]
        return [(sample["metric"], float(sample["value"][1])) for sample in data["result"]]

    def rules(self):
        """Every loaded rule: (group, name, health, last error)."""
        return [(group["name"], rule["name"], rule["health"], rule.get("lastError", ""))
                for group in self.api("rules")["groups"] for rule in group["rules"]]

    def scrapes(self):
        """Completed scrapes of the relay target so far (from Prometheus's own series)."""
        samples = self.query('count_over_time(up{job="codex-relay"}[1h])')
        return int(samples[0][1]) if samples else 0

    def target_health(self):
        """(health, last error) of the relay target."""
        for target in self.api("targets")["activeTargets"]:
            if target["labels"].get("job") == "codex-relay":
                return target["health"], target.get("lastError", "")
        return "missing", ""

    def declared_families(self):
        """The metric families the relay declares (HELP/TYPE), as Prometheus recorded them."""
        return {entry["metric"] for entry in
                self.api("targets/metadata", match_target='{job="codex-relay"}')}
