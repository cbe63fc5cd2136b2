"""The probes' common kit (issue 12): a live server, a bystander, and one
rule for every probe: after each attack the server still runs and a
bystander connection, opened before the first attack, still gets its
heartbeat answered. A probe file replays one class of attacks; each check
names the attack and the documented answer it expects (docs/security.md).

    /usr/bin/python3 tests/probes/probe_<group>.py   (or: ctest -L probes, make probes) <wsrelay> <source-dir>
"""

import base64
import hashlib
import hmac
import json
import os
import sys
import tempfile

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))

from wsrelay_harness import (  # noqa: E402,F401
    Checker, Server, clean_env, close_quietly, connect, expect_silence, http_get, raw_http, recv_json, recv_until,
    request, run_async_main, send_json, usage_args)

SECRET = "probe-secret-0123456789abcdef"


def b64url(raw):
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def sign(header_b64, payload_b64, secret=SECRET):
    mac = hmac.new(secret.encode(), ("%s.%s" % (header_b64, payload_b64)).encode("ascii"), hashlib.sha256)
    return b64url(mac.digest())


def jwt_raw(header_json, claims_json, secret=SECRET):
    """An HS256 token from the header and claims as raw JSON text (so a probe
    can repeat a key, which json.dumps cannot)."""
    h, p = b64url(header_json.encode()), b64url(claims_json.encode())
    return "%s.%s.%s" % (h, p, sign(h, p, secret))


def jwt(claims, header=None, secret=SECRET):
    header = header or {"alg": "HS256", "typ": "JWT"}
    return jwt_raw(json.dumps(header, separators=(",", ":")), json.dumps(claims, separators=(",", ":")), secret)


def http_status(answer):
    """The status code of a raw HTTP answer, or None if there is none."""
    if not answer.startswith(b"HTTP/1."):
        return None
    try:
        return int(answer.split(b" ", 2)[1])
    except (IndexError, ValueError):
        return None


def count_responses(answer):
    """How many HTTP responses a raw answer holds (a smuggled request would
    add one)."""
    return answer.count(b"HTTP/1.1 ") + answer.count(b"HTTP/1.0 ")


def config_server(binary, folder, config, env=None, files=None):
    """A Server on folder/config.json (config a dict; listen port 0 unless
    given); files: {name: text} written next to it first."""
    for name, text in (files or {}).items():
        with open(os.path.join(folder, name), "w") as f:
            f.write(text)
    config = dict(config)
    config.setdefault("listen", {"port": 0})
    path = os.path.join(folder, "config.json")
    with open(path, "w") as f:
        json.dump(config, f)
    return Server(binary, ["--config", path], env=env)


def temp_folder():
    return tempfile.TemporaryDirectory()


class Bystander:
    """A client connected before the attacks; after each attack it must get
    its heartbeat answered, on the same connection."""

    def __init__(self, checker, server, path="/ws", welcome=True):
        self.c, self.server, self.path, self.welcome = checker, server, path, welcome
        self.ws, self.beats = None, 0

    async def open(self):
        self.ws = await connect(self.server.url(self.path))
        if self.welcome:
            await recv_json(self.ws)
        return self

    async def still_served(self, attack):
        self.beats += 1
        alive = self.server.alive()
        got = None
        if alive:
            try:
                await send_json(self.ws, {"type": "heartbeat", "id": self.beats})
                got, _ = await recv_until(self.ws, lambda m: m.get("id") == self.beats, timeout=5)
            except Exception as exc:  # noqa: BLE001
                got = "no answer: %r" % exc
        self.c.check(alive and isinstance(got, dict) and got.get("type") == "heartbeat",
                     "after %s: the server runs and the bystander's heartbeat is answered" % attack,
                     got if alive else "server exited with %s" % self.server.proc.poll())

    async def close(self):
        if self.ws is not None:
            await close_quietly(self.ws)


def main(group):
    """Runs an async group(checker, binary, source_dir) under the harness's
    overall timeout; exits with the checker's verdict."""
    binary, source = usage_args()
    sys.exit(run_async_main(lambda c: group(c, binary, source), Checker()))


GOOD_KEY = "dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455's sample: base64 of 16 bytes


def upgrade_request(path="/ws", headers=(), http="HTTP/1.1", key=GOOD_KEY, version="13"):
    """A raw WebSocket upgrade request; key or version None leaves that
    header out; headers: extra (name, value) pairs."""
    lines = ["GET %s %s" % (path, http), "Host: 127.0.0.1", "Upgrade: websocket", "Connection: Upgrade"]
    if key is not None:
        lines.append("Sec-WebSocket-Key: %s" % key)
    if version is not None:
        lines.append("Sec-WebSocket-Version: %s" % version)
    lines += ["%s: %s" % pair for pair in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
