"""Replays hostile input against the codex-relay release binary (see README.md beside this file).

Each attack asserts the clean answer the relay must give, and after every attack the run checks
that the relay is alive, still serves a normal request, and stayed within its memory bound.
Prints one PASS/FAIL line per check and a closing `adversarial: N passed, M failed` line.
"""

import argparse
import gzip
import json
import os
import random
import socket
import string
import struct
import sys
import threading
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from relay import (  # noqa: E402
    BODY_READ_TIMEOUT_SECS, MAX_BODY_BYTES, Relay, openai_error, raw_body, raw_exchange,
    statuses)

MIB = 1024
# What the relay may grow by, in KiB, while it answers an attack: one body limit per concurrent
# hostile request it reads, plus room for the allocator and the connections themselves.
SLACK_KIB = 64 * MIB


class Failed(Exception):
    pass


def check(condition, message):
    if not condition:
        raise Failed(message)


def expect_error(status, body, want_status, what):
    check(status == want_status, f"{what}: status {status}, expected {want_status}")
    error = openai_error(body)
    check(error is not None, f"{what}: the {status} body is not an OpenAI error: {body[:200]!r}")
    return error


# --- bodies ----------------------------------------------------------------------------------
def zstd_bomb(decoded_bytes):
    """A zstd frame of RLE blocks: 4 bytes each inflate to 128 KiB of zeros (32 768 : 1)."""
    block = 128 * 1024
    frame = struct.pack("<I", 0xFD2FB528)
    frame += bytes([0x00, 17 - 10 << 3])  # no content size, no checksum; a 128 KiB window
    blocks = max(1, decoded_bytes // block)
    for i in range(blocks):
        last = 1 if i == blocks - 1 else 0
        header = last | (1 << 1) | (block << 3)  # an RLE block of `block` bytes
        frame += struct.pack("<I", header)[:3] + b"\x00"
    return frame


def gzip_bomb(decoded_bytes):
    return gzip.compress(b"\x00" * decoded_bytes, compresslevel=9)


def request_json(**extra):
    body = {"model": "gpt-5.5", "input": "hello", "stream": True}
    body.update(extra)
    return json.dumps(body).encode()


# --- attacks ---------------------------------------------------------------------------------
def zstd_bombs_are_refused(relay):
    """A 66 KB zstd body that inflates to 2 GiB, four at once: 413 each, memory bounded."""
    bomb = zstd_bomb(2 * 1024 * 1024 * 1024)
    check(len(bomb) < 70_000, f"the bomb is {len(bomb)} bytes")
    answers = []

    def send():
        answers.append(relay.request("POST", "/v1/responses", key=relay.key, body=bomb,
                                     headers={"Content-Encoding": "zstd"}))
    threads = [threading.Thread(target=send) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    check(len(answers) == 4, f"{len(answers)} of 4 bombs were answered")
    for status, _, body in answers:
        expect_error(status, body, 413, "a zstd bomb")
    return 4 * MAX_BODY_BYTES // 1024


def gzip_bomb_is_refused(relay):
    """A gzip body inflating past the limit: 413."""
    status, _, body = relay.request("POST", "/v1/responses", key=relay.key,
                                    body=gzip_bomb(64 * 1024 * 1024),
                                    headers={"Content-Encoding": "gzip"})
    expect_error(status, body, 413, "a gzip bomb")
    return MAX_BODY_BYTES // 1024


def admin_bomb_is_refused(relay):
    """The admin plane's bodies go through the same bounded decoder."""
    status, _, body = relay.admin("POST", "/admin/v1/accounts", body=zstd_bomb(512 * 1024 * 1024),
                                  headers={"Content-Encoding": "zstd"})
    expect_error(status, body, 413, "a zstd bomb to the admin plane")
    return MAX_BODY_BYTES // 1024


def unknown_encoding_is_415(relay):
    status, _, body = relay.request("POST", "/v1/responses", key=relay.key, body=request_json(),
                                    headers={"Content-Encoding": "x-unheard-of"})
    expect_error(status, body, 415, "an unknown Content-Encoding")


def corrupt_encoding_is_400(relay):
    for encoding in ("gzip", "zstd", "deflate"):
        status, _, body = relay.request("POST", "/v1/responses", key=relay.key,
                                        body=b"\x1f\x8b\x08\x00garbage" * 20,
                                        headers={"Content-Encoding": encoding})
        expect_error(status, body, 400, f"a corrupt {encoding} body")


def hostile_json_is_400(relay):
    bodies = {
        "invalid UTF-8": b'{"model": "gpt-5.5", "input": "\xff\xfe"}',
        "nesting 100 000 deep": b'{"model": "gpt-5.5", "input": ' + b"[" * 100_000
        + b"]" * 100_000 + b"}",
        "truncated": request_json()[:-5],
        "a top-level array": b"[1, 2, 3]",
        "a NUL byte": b'{"model": "gpt-5.5"\x00}',
    }
    for what, body in bodies.items():
        status, _, answer = relay.request("POST", "/v1/responses", key=relay.key, body=body)
        expect_error(status, answer, 400, f"a body with {what}")


def stalled_uploads_are_bounded(relay):
    """60 uploads that send 1 MiB of a declared 8 MiB and stall: 408 at the body deadline."""
    declared, sent = 8 * 1024 * 1024, 1024 * 1024
    head = (f"POST /v1/responses HTTP/1.1\r\nHost: relay\r\nAuthorization: Bearer {relay.key}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {declared}\r\n\r\n").encode()
    socks = []
    for _ in range(60):
        sock = socket.create_connection(("127.0.0.1", relay.port), timeout=30)
        sock.sendall(head + b" " * sent)
        socks.append(sock)
    started = time.monotonic()
    check(relay.serves(key=relay.bystander_key), "a normal request failed while uploads stalled")
    answered = 0
    deadline = started + BODY_READ_TIMEOUT_SECS + 10
    for sock in socks:
        try:
            sock.settimeout(max(0.1, deadline - time.monotonic()))
            raw = b""
            while b"\r\n\r\n" not in raw:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                raw += chunk
            if statuses(raw)[:1] == [408]:
                answered += 1
        except OSError:
            pass
        finally:
            sock.close()
    took = time.monotonic() - started
    check(answered == 60, f"{answered} of 60 stalled uploads were answered 408")
    check(took < BODY_READ_TIMEOUT_SECS + 10,
          f"stalled uploads were answered after {took:.1f} s (deadline {BODY_READ_TIMEOUT_SECS} s)")
    return 60 * 2 * sent // 1024


def stalled_upload_holds_its_concurrency_slot(relay):
    """A key capped at one concurrent request cannot stall ten uploads: the second is 429."""
    head = (f"POST /v1/responses HTTP/1.1\r\nHost: relay\r\nAuthorization: Bearer "
            f"{relay.capped_key}\r\nContent-Type: application/json\r\n"
            f"Content-Length: 100000\r\n\r\n").encode()
    stalled = socket.create_connection(("127.0.0.1", relay.port), timeout=30)
    try:
        stalled.sendall(head + b"{")
        time.sleep(0.3)
        started = time.monotonic()
        status, headers, body = relay.request("POST", "/v1/responses", key=relay.capped_key,
                                              body=request_json())
        took = time.monotonic() - started
        expect_error(status, body, 429, "a second request while the first one's body stalls")
        check(took < 2, f"the 429 took {took:.1f} s")
    finally:
        stalled.close()


def smuggling_is_refused(relay):
    """Ambiguous framing is refused; nothing smuggled behind it is served."""
    auth = f"Authorization: Bearer {relay.key}\r\n"
    smuggled = f"GET /v1/models HTTP/1.1\r\nHost: relay\r\n{auth}\r\n"
    cases = {
        "Content-Length with Transfer-Encoding": (
            f"POST /v1/responses HTTP/1.1\r\nHost: relay\r\n{auth}Content-Length: 4\r\n"
            "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled),
        "two different Content-Lengths": (
            f"POST /v1/responses HTTP/1.1\r\nHost: relay\r\n{auth}Content-Length: 0\r\n"
            "Content-Length: 60\r\n\r\n" + smuggled),
        "an obfuscated Transfer-Encoding": (
            f"POST /v1/responses HTTP/1.1\r\nHost: relay\r\n{auth}Transfer-Encoding: xchunked\r\n"
            "Content-Length: 0\r\n\r\n" + smuggled),
        "a bad chunk size": (
            f"POST /v1/responses HTTP/1.1\r\nHost: relay\r\n{auth}Transfer-Encoding: chunked\r\n\r\n"
            "zz\r\n" + smuggled),
    }
    for what, data in cases.items():
        raw = raw_exchange(relay.port, data.encode(), read_secs=3)
        codes = statuses(raw)
        check(200 not in codes, f"{what}: the smuggled request was served ({codes})")
        check(codes[:1] == [400], f"{what}: answered {codes}, expected one 400")


def oversized_headers_are_431(relay):
    """A request head past the HTTP layer's 128 KiB, or with more than 96 header fields: 431."""
    heads = {
        "a 200 KB header": "X-Big: " + "a" * 200_000 + "\r\n",
        "200 header fields": "".join(f"X-Many-{i}: 1\r\n" for i in range(200)),
    }
    for what, fields in heads.items():
        data = "GET /v1/models HTTP/1.1\r\nHost: relay\r\n" + fields + "\r\n"
        raw = raw_exchange(relay.port, data.encode(), read_secs=3)
        codes = statuses(raw)
        check(codes[:1] == [431], f"{what} was answered {codes}, expected 431")
        check(openai_error(raw_body(raw)) is not None,
              f"the 431 for {what} is not an OpenAI error: {raw_body(raw)[:200]!r}")


def slow_headers_are_cut(relay):
    """200 connections dribbling a request head: closed by the head deadline, others served."""
    socks = []
    for _ in range(200):
        sock = socket.create_connection(("127.0.0.1", relay.port), timeout=30)
        sock.sendall(b"POST /v1/responses HTTP/1.1\r\nHost: relay\r\n")
        socks.append(sock)
    check(relay.serves(), "a normal request failed while 200 slow heads were open")
    for _ in range(3):
        time.sleep(1)
        for sock in socks:
            try:
                sock.sendall(b"X-Slow: 1\r\n")
            except OSError:
                pass
    closed = 0
    deadline = time.monotonic() + 15
    for sock in socks:
        sock.settimeout(max(0.1, deadline - time.monotonic()))
        try:
            while sock.recv(65536):
                pass
            closed += 1
        except OSError:
            closed += 1 if time.monotonic() < deadline else 0
        finally:
            sock.close()
    check(closed == 200, f"{closed} of 200 slow request heads were cut off by the relay")


def long_path_logs_a_bounded_line(relay):
    before = len(relay.log_lines())
    status, _, body = relay.request("GET", "/v1/" + "a" * 60_000)
    expect_error(status, body, 401, "a 60 KB path without a key")
    status, _, body = relay.request("POST", "/v1/responses", key=relay.key,
                                    body=request_json(model="m" * 60_000))
    check(400 <= status < 500, f"a 60 KB model was answered {status}")
    time.sleep(0.5)
    longest = max((len(line) for line in relay.log_lines()[before:]), default=0)
    check(longest < 4096, f"the longest log line written for them has {longest} characters")


def key_guessing_is_throttled(relay):
    """Guessed keys from one address: the relay stops answering them one by one, and logging."""
    source = "127.0.0.2"
    before = len(relay.log_lines())
    codes = []
    for _ in range(200):
        guess = "sk-" + "".join(random.choices(string.ascii_letters, k=40))
        data = (f"GET /v1/models HTTP/1.1\r\nHost: relay\r\nAuthorization: Bearer {guess}\r\n"
                "Connection: close\r\n\r\n").encode()
        codes.extend(statuses(raw_exchange(relay.port, data, read_secs=3, source=source))[:1])
    check(codes[:1] == [401], f"the first guess was answered {codes[:1]}")
    check(codes[-1] == 429, f"the 200th guess was answered {codes[-1]}, expected 429")
    time.sleep(0.5)
    logged = len(relay.log_lines()) - before
    check(logged < 100, f"200 guesses wrote {logged} log lines")
    check(relay.serves(), "a request from another address failed while one was throttled")


def nested_input_opens_no_breaker(relay):
    """A request the upstream fails on every account is the request's failure, not theirs."""
    nested = {"model": "gpt-5.5", "stream": True, "input": [
        {"type": "message", "role": "user", "content": [
            {"type": "input_text", "text": "x", "nest": json.loads("[" * 120 + "]" * 120)}]}]}
    for _ in range(3):
        status, _, _ = relay.request("POST", "/v1/responses", key=relay.key,
                                     body=json.dumps(nested).encode())
        check(status != 200, "the nested request was expected to fail upstream")
    accounts = json.loads(relay.cli("account", "list", "--json"))
    states = {a.get("id"): a.get("state") for a in accounts}
    check(all(state == "active" for state in states.values()),
          f"accounts after three nested requests: {states}")
    check(relay.serves(key=relay.bystander_key), "another key was not served after them")


ATTACKS = [
    zstd_bombs_are_refused, gzip_bomb_is_refused, admin_bomb_is_refused,
    unknown_encoding_is_415, corrupt_encoding_is_400, hostile_json_is_400,
    stalled_uploads_are_bounded, stalled_upload_holds_its_concurrency_slot,
    smuggling_is_refused, oversized_headers_are_431, slow_headers_are_cut,
    long_path_logs_a_bounded_line, nested_input_opens_no_breaker, key_guessing_is_throttled,
]


def no_secret_in_the_log(relay):
    lines = relay.log_lines()
    leaks = [what for what, secret in relay.secrets().items()
             if secret and any(secret in line for line in lines)]
    check(not leaks, f"the relay log contains {', '.join(leaks)}")


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--relay", required=True, help="the codex-relay binary (release)")
    parser.add_argument("--mock", required=True, help="the mock_upstream binary")
    parser.add_argument("--only", help="run only the attacks whose name contains this")
    args = parser.parse_args()
    relay = Relay(args.relay, args.mock)
    passed = failed = 0

    def outcome(name, error, detail=""):
        nonlocal passed, failed
        if error is None:
            passed += 1
            print(f"adversarial: PASS {name}{detail}", flush=True)
        else:
            failed += 1
            print(f"adversarial: FAIL {name}: {error}", flush=True)

    try:
        relay.start()
        baseline, _ = relay.rss_kib()
        print(f"adversarial: relay started, {baseline // 1024} MiB resident", flush=True)
        for attack in ATTACKS:
            if args.only and args.only not in attack.__name__:
                continue
            relay.reset_peak()
            before, _ = relay.rss_kib()
            error, detail = None, ""
            started = time.monotonic()
            try:
                allowance = attack(relay) or 0
                check(relay.alive(), "the relay died")
                check(relay.serves(), "the relay no longer serves a normal request")
                _, peak = relay.rss_kib()
                bound = before + allowance + SLACK_KIB
                check(peak <= bound, f"peak resident memory {peak // 1024} MiB over the bound "
                                     f"{bound // 1024} MiB")
                detail = (f" ({time.monotonic() - started:.1f} s, peak {peak // 1024} MiB "
                          f"from {before // 1024} MiB, bound {bound // 1024} MiB)")
            except Failed as e:
                error = str(e)
            except Exception as e:  # a broken attack counts as a failure, with its cause
                error = f"{type(e).__name__}: {e}\n{traceback.format_exc()}"
            outcome(attack.__name__, error, detail)
            if not relay.alive():
                break
        error = None
        try:
            no_secret_in_the_log(relay)
        except Failed as e:
            error = str(e)
        outcome("no_secret_in_the_log", error)
    except Exception as e:
        outcome("starting the relay", f"{type(e).__name__}: {e}")
    finally:
        relay.stop()
    print(f"adversarial: {passed} passed, {failed} failed", flush=True)
    if failed:
        print(f"adversarial: the run's files are in {relay.tmp}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
