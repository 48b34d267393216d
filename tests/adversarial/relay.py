"""A codex-relay release binary and the mock upstream, started for the adversarial run (and for
the Prometheus run, tests/prometheus/, which adds to it through `mock_args` and `prepare`).

Owns the processes (mock, relay), their settings, the accounts and keys the attacks use, and the
observations every attack needs: liveness, a normal request, the relay's memory, its log.
Standard library only, so the run needs nothing installed beyond Python.
"""

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import tempfile
import time

# The body-read deadline of the relay under attack: short, so stalled uploads are answered soon.
BODY_READ_TIMEOUT_SECS = 3
# The relay's own request-head deadline (actix-web's client_request_timeout): slow headers.
MAX_BODY_BYTES = 16 * 1024 * 1024


def free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


class Relay:
    """The relay under attack, with everything the attacks talk to."""

    def __init__(self, relay_bin, mock_bin):
        self.relay_bin = relay_bin
        self.mock_bin = mock_bin
        self.tmp = tempfile.mkdtemp(prefix="codex-relay-adversarial-")
        self.mock_port, self.port, self.admin_port = free_ports(3)
        self.procs = []
        self.log_path = os.path.join(self.tmp, "relay.log")
        self.env = self._env()

    # --- lifecycle -------------------------------------------------------------------------
    def _env(self):
        env = {k: v for k, v in os.environ.items() if not k.startswith("CODEX_RELAY")}
        env.update({
            "CODEX_RELAY__STORE__PATH": os.path.join(self.tmp, "relay.db"),
            "CODEX_RELAY__SERVER__LISTEN": f"127.0.0.1:{self.port}",
            "CODEX_RELAY__ADMIN__LISTEN": f"127.0.0.1:{self.admin_port}",
            "CODEX_RELAY__UPSTREAM__BASE_URL": f"http://127.0.0.1:{self.mock_port}",
            "CODEX_RELAY__OAUTH__ISSUER": f"http://127.0.0.1:{self.mock_port}",
            "CODEX_RELAY__SERVER__BODY_READ_TIMEOUT_SECS": str(BODY_READ_TIMEOUT_SECS),
            "CODEX_RELAY__SERVER__MAX_BODY_BYTES": str(MAX_BODY_BYTES),
            "CODEX_RELAY__LOG__LEVEL": "debug",
        })
        return env

    def start(self):
        auth_dir = os.path.join(self.tmp, "logins")
        mock_log = open(os.path.join(self.tmp, "mock.log"), "w")
        mock = subprocess.Popen(
            [self.mock_bin, "--listen", f"127.0.0.1:{self.mock_port}",
             "--write-auth-dir", auth_dir, "--accounts", "3", *self.mock_args(auth_dir)],
            stdout=mock_log, stderr=subprocess.STDOUT)
        self.procs.append(mock)
        self._wait(lambda: _answers(self.mock_port, "/models"), "the mock upstream")
        self.auth_files = sorted(os.path.join(auth_dir, f) for f in os.listdir(auth_dir))
        self.accounts = [self.cli("account", "import", path).strip() for path in self.auth_files]
        self.key = self.cli("key", "create", "--name", "adversary").strip()
        self.capped_key = self.cli("key", "create", "--name", "capped",
                                   "--max-concurrent", "1").strip()
        self.bystander_key = self.cli("key", "create", "--name", "bystander").strip()
        self.admin_token = self.cli("admin-token", "create", "--scope", "write",
                                    "--name", "adversarial").strip()
        self.prepare()
        log = open(self.log_path, "w")
        self.proc = subprocess.Popen([self.relay_bin, "serve"], env=self.env,
                                     stdout=log, stderr=subprocess.STDOUT)
        self.procs.append(self.proc)
        self._wait(lambda: self.alive() and _answers(self.port, "/healthz"), "the relay")
        self._wait(lambda: self.serves(), "a first request through the relay")

    def mock_args(self, auth_dir):
        """More arguments for the mock upstream; logins it writes into `auth_dir` are imported."""
        return []

    def prepare(self):
        """Runs once the accounts, keys and admin token exist, before the relay serves."""

    def stop(self):
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def _wait(self, ready, what, secs=30):
        deadline = time.monotonic() + secs
        while time.monotonic() < deadline:
            try:
                if ready():
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{what} was not ready within {secs} s; see {self.tmp}")

    def cli(self, *args):
        done = subprocess.run([self.relay_bin, *args], env=self.env, capture_output=True,
                              text=True, timeout=60)
        if done.returncode != 0:
            raise RuntimeError(f"codex-relay {' '.join(args[:2])} failed: {done.stderr.strip()}")
        return done.stdout

    # --- observations ----------------------------------------------------------------------
    def alive(self):
        return self.proc.poll() is None

    def rss_kib(self):
        """(current, peak) resident memory of the relay, in KiB."""
        fields = {}
        with open(f"/proc/{self.proc.pid}/status") as status:
            for line in status:
                name, _, value = line.partition(":")
                fields[name] = value.strip()
        return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])

    def reset_peak(self):
        """Starts the relay's peak resident memory (VmHWM) again from its current size."""
        with open(f"/proc/{self.proc.pid}/clear_refs", "w") as refs:
            refs.write("5")

    def serves(self, key=None):
        """Whether a plain streaming request with a valid key is answered to its end."""
        status, _, body = self.request(
            "POST", "/v1/responses", key=key or self.key,
            body=json.dumps({"model": "gpt-5.5", "input": "liveness", "stream": True}).encode())
        return status == 200 and b"response.completed" in body

    def request(self, method, path, key=None, body=None, headers=None, port=None, timeout=30):
        conn = http.client.HTTPConnection("127.0.0.1", port or self.port, timeout=timeout)
        try:
            sent = dict(headers or {})
            if key:
                sent["Authorization"] = f"Bearer {key}"
            if body is not None:
                sent.setdefault("Content-Type", "application/json")
            conn.request(method, path, body=body, headers=sent)
            response = conn.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            conn.close()

    def admin(self, method, path, body=None, headers=None):
        sent = dict(headers or {})
        sent["Authorization"] = f"Bearer {self.admin_token}"
        return self.request(method, path, body=body, headers=sent, port=self.admin_port)

    def log_lines(self):
        with open(self.log_path, encoding="utf-8", errors="replace") as log:
            return log.read().splitlines()

    def secrets(self):
        """Every secret the relay holds for this run, by what it is."""
        found = {"the adversary's API key": self.key, "the capped API key": self.capped_key,
                 "the bystander's API key": self.bystander_key,
                 "the admin token": self.admin_token}
        for path in self.auth_files:
            tokens = json.load(open(path)).get("tokens") or {}
            for name in ("access_token", "refresh_token", "id_token"):
                if tokens.get(name):
                    found[f"{name} of {os.path.basename(path)}"] = tokens[name]
        key_path = os.path.join(self.tmp, "master.key")
        if os.path.exists(key_path):
            found["the master key"] = open(key_path).read().strip()
        return found


def _answers(port, path):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        conn.request("GET", path)
        return conn.getresponse().status < 500
    finally:
        conn.close()


def openai_error(body):
    """The `error` object of an OpenAI-shaped error body, or None."""
    try:
        error = json.loads(body).get("error")
    except (ValueError, AttributeError):
        return None
    if isinstance(error, dict) and isinstance(error.get("message"), str) and "type" in error:
        return error
    return None


def raw_exchange(port, data, read_secs=5, source="127.0.0.1"):
    """Sends raw bytes on a new connection; returns all bytes read until close or timeout."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=read_secs,
                                    source_address=(source, 0))
    try:
        sock.sendall(data)
        chunks = []
        deadline = time.monotonic() + read_secs
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        sock.close()


STATUS_LINE = re.compile(rb"HTTP/1\.[01] (\d{3})")


def statuses(raw):
    """The status codes of every response in a raw HTTP/1.1 exchange, in order."""
    return [int(m.group(1)) for m in STATUS_LINE.finditer(raw)]


def raw_body(raw):
    """The body of the first response in a raw exchange (without chunked framing)."""
    head, _, rest = raw.partition(b"\r\n\r\n")
    if b"transfer-encoding: chunked" in head.lower():
        body, data = b"", rest
        while data:
            size_line, _, data = data.partition(b"\r\n")
            size = int(size_line.split(b";")[0] or b"0", 16)
            if size == 0:
                break
            body, data = body + data[:size], data[size + 2:]
        return body
    return rest
