#!/usr/bin/python3
"""examples/embed-lws: an lws server with its own protocol and HTTP mount that
adds the relay (loaded as a plugin, or linked in), tested on its one port with
an independent client (Debian's python3-websockets) and plain HTTP.

usage: test_embed.py --binary EMBED_HOST --plugins DIR --www DIR --script standard.lua [--plugin-only]
"""

import argparse
import asyncio
import http.client
import json
import os
import base64
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import websockets

TIMEOUT = 5.0


class Checker:
    def __init__(self):
        self.passed, self.failed = 0, []

    def check(self, ok, what, detail=""):
        if ok:
            self.passed += 1
        else:
            self.failed.append(what)
            print("FAIL: %s %s" % (what, detail), flush=True)

    def report(self):
        print("%d passed, %d failed" % (self.passed, len(self.failed)))
        return 1 if self.failed else 0


class Host:
    """embed_host on port 0; the port comes from its 'listening on' line."""

    def __init__(self, argv):
        env = dict(os.environ)
        env.pop("WSRELAY_JWT_SECRET", None)  # development mode: the token is the user
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                                     text=True)
        self.lines = []
        self.port = None
        ready = threading.Event()

        def drain():
            for line in self.proc.stdout:
                self.lines.append(line.rstrip("\n"))
                m = re.search(r"listening on ws://[^:]+:(\d+)", line)
                if m and self.port is None:
                    self.port = int(m.group(1))
                    ready.set()
            ready.set()

        self.thread = threading.Thread(target=drain, daemon=True)
        self.thread.start()
        ready.wait(20)
        if self.port is None:
            self.stop()
            raise RuntimeError("embed_host did not start:\n" + "\n".join(self.lines))

    def log(self):
        return "\n".join(self.lines)

    def wait_log(self, needle, timeout=5.0):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if needle in self.log():
                return True
            time.sleep(0.05)
        return False

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.thread.join(5)
        return self.proc.returncode


def http_get(port, path):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
    conn.request("GET", path)
    r = conn.getresponse()
    body = r.read().decode("utf-8", "replace")
    conn.close()
    return r.status, body


async def recv_json(ws):
    return json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))


async def request(ws, message):
    await ws.send(json.dumps(message))
    return await recv_json(ws)


async def exercise(c, port, relay_path):
    url = "ws://127.0.0.1:%d" % port

    # The host's own protocol, by name and as the default.
    async with websockets.connect(url + "/anything", subprotocols=["host-shout"], open_timeout=TIMEOUT) as ws:
        c.check(ws.subprotocol == "host-shout", "host protocol negotiated", ws.subprotocol)
        await ws.send("hello host")
        c.check(await asyncio.wait_for(ws.recv(), TIMEOUT) == "HELLO HOST", "host-shout answers in upper case")
    async with websockets.connect(url + "/", open_timeout=TIMEOUT) as ws:
        await ws.send("default")
        c.check(await asyncio.wait_for(ws.recv(), TIMEOUT) == "DEFAULT",
                "a client naming no protocol gets the host's first protocol")

    # The relay: two clients, auth, subscribe, chat fan-out.
    async with websockets.connect(url + relay_path, subprotocols=["wsrelay"], open_timeout=TIMEOUT) as a, \
            websockets.connect(url + relay_path, subprotocols=["wsrelay"], open_timeout=TIMEOUT) as b:
        c.check(a.subprotocol == "wsrelay", "relay protocol negotiated", a.subprotocol)
        for ws, user in ((a, "alice"), (b, "bob")):
            welcome = await recv_json(ws)
            c.check(welcome.get("type") == "welcome", "relay welcome", welcome)
            ok = await request(ws, {"type": "auth", "id": 1, "token": user})
            c.check(ok.get("type") == "auth.ok" and ok.get("user") == user, "relay auth", ok)
            ok = await request(ws, {"type": "subscribe", "id": 2, "channel": "lobby"})
            c.check(ok.get("type") == "subscribe.ok", "relay subscribe", ok)
        await a.send(json.dumps({"type": "chat", "id": 3, "channel": "lobby", "data": "hi bob"}))
        got = await recv_json(b)
        c.check(got.get("type") == "chat" and got.get("from") == "alice" and got.get("data") == "hi bob",
                "the relay fans a chat out to another client", got)

    # The relay refuses a path it has no endpoint for (after the handshake).
    try:
        async with websockets.connect(url + "/not-an-endpoint", subprotocols=["wsrelay"],
                                      open_timeout=TIMEOUT) as ws:
            await asyncio.wait_for(ws.recv(), TIMEOUT)
            c.check(False, "the relay closes a connection on an unknown path")
    except (websockets.exceptions.ConnectionClosed, websockets.exceptions.InvalidHandshake,
            asyncio.TimeoutError, OSError):
        c.check(True, "the relay closes a connection on an unknown path")

    # HTTP: the host's file mount and the relay's routes under its callback mount.
    status, body = http_get(port, "/")
    c.check(status == 200 and "<h1>embed_host</h1>" in body, "the host's own HTTP mount serves its page", status)
    status, body = http_get(port, "/relay/healthz")
    c.check(status == 200, "the relay's /healthz through the LWSMPRO_CALLBACK mount", (status, body))
    status, body = http_get(port, "/relay/status")
    c.check(status == 200 and "connections" in body, "the relay's /status through the mount", (status, body[:200]))


def silent_client(port, path):
    """A raw WebSocket client that never sends a frame and never answers a
    ping: the opcodes the server sent until it hung up, and whether it did."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(("GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: wsrelay\r\n\r\n"
                  % (path, port, key)).encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            return [], False
        data += chunk
    data = data.split(b"\r\n\r\n", 1)[1]
    opcodes = []
    sock.settimeout(30)  # far past the heartbeat timeout: only a hang that never ends fails here
    try:
        while True:
            while len(data) >= 2:  # server frames: unmasked
                n, at = data[1] & 0x7F, 2
                if n == 126:
                    n, at = int.from_bytes(data[2:4], "big"), 4
                elif n == 127:
                    n, at = int.from_bytes(data[2:10], "big"), 10
                if len(data) < at + n:
                    break
                opcodes.append(data[0] & 0x0F)
                data = data[at + n:]
            chunk = sock.recv(65536)
            if not chunk:
                return opcodes, True
            data += chunk
    except socket.timeout:
        return opcodes, False
    except OSError:  # reset: hung up too
        return opcodes, True
    finally:
        sock.close()


async def keepalive(c, port, relay_path):
    """heartbeat {"interval": 1, "timeout": 4}: the relay's sweep pings and hangs
    up the silent; a client that answers pings (websockets does) stays."""
    url = "ws://127.0.0.1:%d" % port
    async with websockets.connect(url + relay_path, subprotocols=["wsrelay"], open_timeout=TIMEOUT,
                                  ping_interval=None) as lively:
        c.check((await recv_json(lively)).get("type") == "welcome", "keepalive: welcome")
        opcodes, hung_up = await asyncio.get_running_loop().run_in_executor(None, silent_client, port, relay_path)
        c.check(hung_up, "keepalive: a client that answers no ping is hung up", opcodes)
        c.check(0x9 in opcodes, "keepalive: it was pinged first", opcodes)
        c.check(0x8 not in opcodes, "keepalive: hung up without a close frame (1006)", opcodes)
        ok = await request(lively, {"type": "heartbeat", "id": "still"})
        c.check(ok.get("id") == "still", "keepalive: the client answering pings is still served", ok)


async def kicked_while_sending(c, port, relay_path):
    # The protocol writes its own close frame and reads on to the client's
    # close, in a host's server as in wsrelay's: a client flooding past the
    # rate limit reads 1008, not the 1006 of a reset.
    ws = await websockets.connect("ws://127.0.0.1:%d%s" % (port, relay_path), subprotocols=["wsrelay"],
                                  open_timeout=TIMEOUT)
    try:
        await recv_json(ws)
        for i in range(300):
            await ws.send(json.dumps({"type": "heartbeat", "id": i}))
        while True:
            await asyncio.wait_for(ws.recv(), TIMEOUT)
    except websockets.exceptions.ConnectionClosed:
        pass
    await asyncio.wait_for(ws.wait_closed(), TIMEOUT)
    c.check((ws.close_code, ws.close_reason) == (1008, "rate limit exceeded"),
            "a client kicked by the rate limit while sending reads 1008", (ws.close_code, ws.close_reason))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", required=True)
    ap.add_argument("--plugins", required=True)
    ap.add_argument("--www", required=True)
    ap.add_argument("--script", required=True)
    ap.add_argument("--plugin-only", action="store_true",
                    help="the binary must not link any wsrelay library")
    args = ap.parse_args()
    c = Checker()

    if args.plugin_only:
        needed = subprocess.run(["readelf", "-d", args.binary], capture_output=True, text=True).stdout
        libs = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", needed)
        c.check(any(l.startswith("libwebsockets") for l in libs), "links libwebsockets", libs)
        c.check(not any("wsrelay" in l for l in libs), "links no wsrelay library", libs)

    base = [args.binary, "--port", "0", "--www", args.www, "--plugins", args.plugins]

    # 1. pvo "script" + "path": one endpoint.
    host = Host(base + ["--script", args.script, "--path", "/relay/ws"])
    try:
        asyncio.run(exercise(c, host.port, "/relay/ws"))
    finally:
        rc = host.stop()
    c.check(rc == 0, "embed_host stops cleanly on SIGTERM", "rc=%s\n%s" % (rc, host.log()))

    # 2. pvo "config": a wsrelay config file (its "listen" is ignored).
    with tempfile.TemporaryDirectory() as tmp:
        config = os.path.join(tmp, "relay.json")
        with open(config, "w") as f:
            json.dump({"listen": {"port": 1}, "heartbeat": {"interval": 1, "timeout": 4},
                       "limits": {"messages_per_second": 20, "message_burst": 20, "rate_limit_close_after": 10},
                       "endpoints": [{"path": "/relay/chat"}]}, f)
        host = Host(base + ["--config", config])
        try:
            asyncio.run(exercise(c, host.port, "/relay/chat"))
            asyncio.run(keepalive(c, host.port, "/relay/chat"))
            asyncio.run(kicked_while_sending(c, host.port, "/relay/chat"))
        finally:
            rc = host.stop()
        c.check(rc == 0, "embed_host (config pvo) stops cleanly", "rc=%s\n%s" % (rc, host.log()))

        # 3. A bad pvo is reported by the relay, naming the place.
        host = Host(base + ["--script", os.path.join(tmp, "missing.lua"), "--path", "/relay/ws"])
        try:
            # PROTOCOL_INIT runs at the first turn of the loop: poke it.
            try:
                http_get(host.port, "/")
            except OSError:
                pass
            c.check(host.wait_log("pvo: endpoints[0].script: file not found"),
                    "a bad pvo is logged with its place", host.log())
        finally:
            host.stop()

    return c.report()


if __name__ == "__main__":
    sys.exit(main())
