"""The limits the real Codex CLI reads through the relay are the caller's.

Usage: python codex_limits.py CODEX RELAY_PORT KEY CODEX_HOME DAY_TOKENS MONTH_TOKENS

KEY is a fresh key with the token quotas DAY_TOKENS and MONTH_TOKENS; it spends one
`codex exec --json` turn (through the relay as a custom provider), whose tokens are what the
limits must then show.

The Codex CLI prints no rate limits in `codex exec --json`; its machine-readable view is the
app server (`codex app-server`, JSON-RPC over stdio), whose `account/rateLimits/read` makes the
CLI fetch the usage endpoint under `chatgpt_base_url` (`<base>/wham/usage`) with its ChatGPT
login's access token as the bearer. CODEX_HOME gets a fake ChatGPT login whose access token is
the relay key (the CLI parses the id token's claims but never verifies its signature), and a
`chatgpt_base_url` pointing at the relay. A turn through the app server then brings an
`account/rateLimits/updated` notification, which the CLI builds from the rate-limit headers and
`codex.rate_limits` events of the relay's answer.

The check, for both: the windows the CLI reports equal what the relay computes for the key
(`GET /backend-api/wham/usage` with the key), match the key's quotas and the tokens of its one
turn, and are not one pool account's (the mock upstream's accounts report 12.5% and 3% used in
their rate-limit headers).
"""

import base64
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request

ACCOUNT_PRIMARY, ACCOUNT_SECONDARY = 12.5, 3.0

# Turns go through the relay as a custom provider with the key; the usage endpoint lives under
# `chatgpt_base_url`, read with the ChatGPT login's access token (the same key).
CONFIG = """model = "gpt-5.5"
model_provider = "relay"
chatgpt_base_url = "http://127.0.0.1:{port}/backend-api/"
cli_auth_credentials_store = "file"

[model_providers.relay]
name = "relay"
base_url = "http://127.0.0.1:{port}/v1"
env_key = "RELAY_API_KEY"
wire_api = "responses"
request_max_retries = 0
stream_max_retries = 0
"""


def b64(obj):
    raw = json.dumps(obj).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def fake_login(key):
    """A ChatGPT login in auth.json's shape whose access token is the relay key."""
    now = int(time.time())
    claims = {
        "email": "caller@example.invalid",
        "exp": now + 86400,
        "https://api.openai.com/auth": {
            "chatgpt_plan_type": "plus",
            "chatgpt_account_id": "caller",
            "chatgpt_user_id": "user-caller",
        },
    }
    id_token = f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims)}.c2ln"
    return {
        "OPENAI_API_KEY": None,
        "tokens": {
            "id_token": id_token,
            "access_token": key,
            "refresh_token": "unused",
            "account_id": "caller",
        },
        "last_refresh": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
    }


class AppServer:
    """`codex app-server` over stdio: JSON-RPC requests, answers, and the notifications between."""

    def __init__(self, codex, home, key):
        env = dict(os.environ, CODEX_HOME=home, RELAY_API_KEY=key)
        env.pop("OPENAI_API_KEY", None)
        self.proc = subprocess.Popen(
            [codex, "app-server"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, env=env, text=True,
        )
        self.notes = []
        self.next_id = 0

    def close(self):
        self.proc.kill()
        self.proc.wait()

    def send(self, msg):
        self.proc.stdin.write(json.dumps(msg) + "\n")
        self.proc.stdin.flush()

    def read(self):
        line = self.proc.stdout.readline()
        if not line:
            sys.exit("codex app-server closed its output")
        return json.loads(line)

    def call(self, method, params):
        self.next_id += 1
        self.send({"id": self.next_id, "method": method, "params": params})
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            msg = self.read()
            if msg.get("id") == self.next_id and "method" not in msg:
                if "error" in msg:
                    sys.exit(f"codex app-server refused {method}: {msg['error']}")
                return msg["result"]
            self.notes.append(msg)
        sys.exit(f"codex app-server did not answer {method} within 60 s")

    def until(self, method):
        """Notifications up to and including the first `method` one."""
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            self.notes.append(self.read())
            if self.notes[-1].get("method") == method:
                return
        sys.exit(f"codex app-server sent no {method} within 120 s")


def read_and_turn(codex, home, key, workdir):
    """`account/rateLimits/read`, then the first `account/rateLimits/updated` of a turn."""
    server = AppServer(codex, home, key)
    try:
        server.call("initialize", {"clientInfo": {"name": "codex-relay-e2e", "title": None,
                                                  "version": "0.1.0"}, "capabilities": None})
        server.send({"method": "initialized"})
        read = server.call("account/rateLimits/read", {})["rateLimits"]
        server.notes.clear()
        thread = server.call("thread/start", {"cwd": workdir})["thread"]["id"]
        server.call("turn/start", {"threadId": thread,
                                   "input": [{"type": "text", "text": "say hi"}]})
        server.until("turn/completed")
        updates = [n["params"]["rateLimits"] for n in server.notes
                   if n.get("method") == "account/rateLimits/updated"]
        if not updates:
            sys.exit("the turn brought no account/rateLimits/updated notification")
        return read, updates[0]
    finally:
        server.close()


def relay_usage(port, key):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/backend-api/wham/usage",
                                 headers={"Authorization": f"Bearer {key}"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.load(resp)["rate_limit"]


def wait_for_key(port, key):
    """The relay reads new keys at its store sync interval: wait until it knows this one."""
    deadline = time.monotonic() + 30
    while True:
        try:
            return relay_usage(port, key)
        except urllib.error.HTTPError as err:
            if err.code != 401 or time.monotonic() > deadline:
                sys.exit(f"the relay does not take the key: {err}")
            time.sleep(0.5)


def spend_one_turn(codex, home, key):
    """Tokens of one `codex exec --json` turn as the relay counts them (input + output)."""
    env = dict(os.environ, CODEX_HOME=home, RELAY_API_KEY=key)
    env.pop("OPENAI_API_KEY", None)
    done = subprocess.run(
        [codex, "exec", "--skip-git-repo-check", "--ephemeral", "--json", "say hi"],
        cwd=os.path.join(home, "work"), env=env, stdin=subprocess.DEVNULL,
        capture_output=True, text=True, timeout=120,
    )
    events = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    usage = [e["usage"] for e in events if e.get("type") == "turn.completed"]
    if done.returncode != 0 or len(usage) != 1:
        sys.exit(f"codex exec failed (status {done.returncode}):\n{done.stdout}{done.stderr}")
    return usage[0]["input_tokens"] + usage[0]["output_tokens"]


def check(source, shown, expected, quotas, spent):
    for name, account in (("primary", ACCOUNT_PRIMARY), ("secondary", ACCOUNT_SECONDARY)):
        window, want = shown.get(name), expected.get(f"{name}_window")
        if window is None or want is None:
            sys.exit(f"{source}: no {name} window (cli {window!r}, relay {want!r})")
        used = window["usedPercent"]
        if abs(used - want["used_percent"]) > 0.5:
            sys.exit(f"{source}: {name} {used}%, the relay computes {want['used_percent']}%")
        if abs(used - account) < 1:
            sys.exit(f"{source}: {name} {used}%, a pool account's number")
        own = 100 * spent / quotas[name]
        if abs(used - own) > 0.5:
            sys.exit(f"{source}: {name} {used}%, the key spent {own:.2f}% of its quota")
        if window.get("windowDurationMins") != want["limit_window_seconds"] // 60:
            sys.exit(f"{source}: {name} lasts {window.get('windowDurationMins')} min, not {want}")


def main():
    codex, port, key, home = sys.argv[1:5]
    quotas = {"primary": int(sys.argv[5]), "secondary": int(sys.argv[6])}
    workdir = os.path.join(home, "work")
    os.makedirs(workdir, exist_ok=True)
    with open(os.path.join(home, "config.toml"), "w", encoding="utf-8") as f:
        f.write(CONFIG.format(port=port))
    login = os.path.join(home, "auth.json")
    with open(login, "w", encoding="utf-8") as f:
        json.dump(fake_login(key), f)
    os.chmod(login, 0o600)

    wait_for_key(port, key)
    spent = spend_one_turn(codex, home, key)
    expected = relay_usage(port, key)
    read, update = read_and_turn(codex, home, key, workdir)
    print(json.dumps({"relay": expected, "read": read, "updated": update}))
    check("account/rateLimits/read", read, expected, quotas, spent)
    # The turn's answer carries the limits as they were before it: the one turn's spend.
    check("account/rateLimits/updated", update, expected, quotas, spent)


if __name__ == "__main__":
    main()
