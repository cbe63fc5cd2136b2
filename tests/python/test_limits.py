#!/usr/bin/python3
"""Hardening limits with an independent client (python3-websockets):
origin allow-list (403), connection caps (503), rate limits (rate_limited,
then 1008), subscription cap, admin routes (401 / 200), handshake timeout,
a slow consumer under a flood (bounded server memory, everyone else gets
every message in order), drop_oldest, and a TLS listener with a certificate
made at test time. Each limit's value and what the client sees is in
docs/security.md.

    /usr/bin/python3 tests/python/test_limits.py <wsrelay> <source-dir>
"""

import asyncio
import json
import os
import socket
import ssl
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import websockets  # noqa: E402

from wsrelay_harness import (  # noqa: E402
    Checker, Server, clean_env, connect, http_get, recv_json, request, run_async_main, run_scenarios,
    self_signed_cert, send_json)


def write_config(folder, body):
    path = os.path.join(folder, "config.json")
    with open(path, "w") as f:
        json.dump(body, f)
    return path


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


async def refused_status(url, headers=None):
    try:
        ws = await websockets.connect(url, extra_headers=headers or {}, open_timeout=5)
    except websockets.InvalidStatusCode as exc:
        return exc.status_code
    await ws.close()
    return 101


async def origins(c, binary, folder):
    cfg = write_config(folder, {"listen": {"port": 0}, "endpoints": [
        {"path": "/ws", "allowed_origins": ["https://good.example"]}]})
    with Server(binary, ["--config", cfg]) as server:
        c.equal(await refused_status(server.url(), {"Origin": "https://evil.example"}), 403,
                "an origin not on the list is refused with 403")
        c.equal(await refused_status(server.url(), {"Origin": "https://good.example"}), 101,
                "a listed origin is accepted")
        status, _, body = http_get(server.connect_host(), server.port, "/status")
        c.check(json.loads(body).get("refused_connections") == 1, "/status counts the refused upgrade", body[:200])


async def connection_caps(c, binary, folder):
    cfg = write_config(folder, {"listen": {"port": 0}, "limits": {"max_connections_per_ip": 2},
                                "endpoints": [{"path": "/ws"}]})
    with Server(binary, ["--config", cfg]) as server:
        a = await connect(server.url())
        b = await connect(server.url())
        c.equal(await refused_status(server.url()), 503, "a third connection from one address gets 503")
        await a.close()
        status = None
        for _ in range(30):  # the server sees the close a moment later
            status = await refused_status(server.url())
            if status == 101:
                break
            await asyncio.sleep(0.1)
        c.equal(status, 101, "a slot freed by a close can be used again")
        await b.close()
    cfg = write_config(folder, {"listen": {"port": 0}, "limits": {"max_connections": 1},
                                "endpoints": [{"path": "/ws"}]})
    with Server(binary, ["--config", cfg]) as server:
        a = await connect(server.url())
        c.equal(await refused_status(server.url()), 503, "max_connections reached: 503")
        await a.close()


async def rate_limits(c, binary, folder):
    # One token a second: the bucket refills slowly enough that the burst and
    # the message over it, sent together, meet an empty bucket however long
    # a loaded machine takes to deliver them (at 5/s a token came back after
    # 200 ms, and a burst read before sending the sixth could outlast that).
    cfg = write_config(folder, {"listen": {"port": 0}, "limits": {
        "messages_per_second": 1, "message_burst": 5, "rate_limit_close_after": 10, "max_subscriptions": 2},
        "endpoints": [{"path": "/ws"}]})
    with Server(binary, ["--config", cfg]) as server:
        ws = await connect(server.url())
        other = await connect(server.url())
        await recv_json(ws)
        await recv_json(other)
        for i in range(5):
            await send_json(ws, {"type": "heartbeat", "id": i})
        await send_json(ws, {"type": "heartbeat", "id": "over"})
        replies = [await recv_json(ws) for _ in range(5)]
        c.check(all(r.get("type") == "heartbeat" for r in replies), "the burst is served", replies)
        got = await recv_json(ws)
        c.equal(got.get("code"), "rate_limited", "over the rate: rate_limited")
        c.check("retry after" in got.get("message", ""), "the error carries a retry hint", got)
        c.equal(got.get("id"), "over", "rate_limited echoes the id")
        got = await request(other, {"type": "heartbeat", "id": "o"})
        c.equal(got.get("type"), "heartbeat", "another client is not limited")
        await asyncio.sleep(1.2)  # one token back (1 s), with a margin
        got = await request(ws, {"type": "heartbeat", "id": "later"})
        c.equal(got.get("type"), "heartbeat", "after waiting, messages pass again")
        # Keep hammering: after rate_limit_close_after refusals in a row, 1008.
        try:
            for i in range(60):
                await send_json(ws, {"type": "heartbeat", "id": i})
            while True:
                await asyncio.wait_for(ws.recv(), 5)
        except websockets.ConnectionClosed:
            pass
        # The close lands while we are still sending: the server reads on to
        # our close, so the code arrives all the same (test_close_handshake.py).
        await asyncio.wait_for(ws.wait_closed(), 5)
        c.equal((ws.close_code, ws.close_reason), (1008, "rate limit exceeded"),
                "sustained abuse closes with 1008")
        logged = False
        for _ in range(40):  # stderr is read by a thread: give the line a moment
            logged = "closing with 1008" in server.stderr_text()
            if logged:
                break
            await asyncio.sleep(0.05)
        c.check(logged, "the server logs the 1008 close")
        # Subscription cap.
        got = await request(other, {"type": "auth", "token": "ann"})
        for ch in ("a", "b"):
            got = await request(other, {"type": "subscribe", "id": ch, "channel": ch})
        got = await request(other, {"type": "subscribe", "id": "c", "channel": "c"})
        c.equal((got.get("code"), got.get("id")), ("bad_request", "c"), "a subscription over the cap is refused")
        c.check("too many subscriptions" in got.get("message", ""), "and says why", got)
        await other.close()


async def message_type_limits(c, binary, folder):
    # As in rate_limits: one chat token a second, and the messages that must
    # meet an empty bucket are sent together, not one round trip apart (at
    # 2/s a token came back after 500 ms, which a loaded machine can spend on
    # three round trips).
    cfg = write_config(folder, {"listen": {"port": 0}, "limits": {
        "rate_limit_close_after": 3, "message_types": {"chat": {"per_second": 1, "burst": 2}}},
        "endpoints": [{"path": "/ws"}]})
    with Server(binary, ["--config", cfg]) as server:
        status, _, body = http_get(server.connect_host(), server.port, "/status")
        c.equal(json.loads(body)["limits"].get("message_types"), {"chat": {"per_second": 1, "burst": 2}},
                "/status shows limits.message_types")
        ws = await connect(server.url())
        await recv_json(ws)
        await request(ws, {"type": "auth", "token": "ann"})
        for i in range(2):
            await send_json(ws, {"type": "chat", "id": i, "channel": "c", "data": i})
        await send_json(ws, {"type": "chat", "id": "over", "channel": "c", "data": 3})
        replies = [await recv_json(ws) for i in range(2)]
        c.check(all(r.get("type") == "chat.ok" for r in replies), "the chat burst is served", replies)
        got = await recv_json(ws)
        c.equal((got.get("code"), got.get("id")), ("rate_limited", "over"),
                "a third chat inside the second: rate_limited with its id")
        c.check("'chat'" in got.get("message", "") and "retry after" in got.get("message", ""),
                "the error names the type and gives a retry hint", got)
        got = await request(ws, {"type": "heartbeat", "id": "hb"})
        c.equal(got.get("type"), "heartbeat", "other types are not limited by the chat rate")
        await asyncio.sleep(1.2)  # one token back (1 s), with a margin
        got = await request(ws, {"type": "chat", "id": "later", "channel": "c", "data": 4})
        c.equal(got.get("type"), "chat.ok", "after waiting, a chat passes again")
        # rate_limit_close_after (3) refusals in a row close with 1008. The
        # chats go out together, so no token comes back between them; the
        # server reads on to our close, so the code arrives although we are
        # still sending (test_close_handshake.py).
        for i in range(6):
            try:
                await send_json(ws, {"type": "chat", "id": "x%d" % i, "channel": "c", "data": i})
            except websockets.ConnectionClosed:
                break
        refusals = []
        try:
            while True:
                refusals.append(await recv_json(ws))
        except websockets.ConnectionClosed:
            pass
        await asyncio.wait_for(ws.wait_closed(), 5)
        c.check(ws.close_code == 1008, "sustained chat flooding closes with 1008", (ws.close_code, refusals))
        c.check(sum(1 for r in refusals if r.get("code") == "rate_limited") >= 2,
                "refusals come before the close", refusals)
        status, _, body = http_get(server.connect_host(), server.port, "/status")
        c.check(json.loads(body).get("rate_limited", 0) >= 3, "/status counts per-type refusals", body[:300])


async def admin_routes(c, binary, folder):
    cfg = write_config(folder, {"listen": {"port": 0}, "endpoints": [{"path": "/ws"}]})
    env = clean_env({"WSRELAY_ADMIN_TOKEN": "admin-secret-token"})
    with Server(binary, ["--config", cfg], env=env) as server:
        host, port = server.connect_host(), server.port
        ws = await connect(server.url())
        welcome = await recv_json(ws)
        await request(ws, {"type": "auth", "token": "ann"})
        await request(ws, {"type": "subscribe", "channel": "news"})
        status, headers, _ = http_get(host, port, "/admin/sessions")
        c.equal(status, 401, "/admin/sessions without a token: 401")
        status, _, _ = http_get(host, port, "/admin/sessions", headers={"Authorization": "Bearer wrong"})
        c.equal(status, 401, "a wrong token: 401")
        auth = {"Authorization": "Bearer admin-secret-token"}
        status, _, body = http_get(host, port, "/admin/sessions", headers=auth)
        c.equal(status, 200, "the right token: 200")
        sessions = json.loads(body).get("sessions", []) if status == 200 else []
        c.check(any(s.get("id") == welcome.get("session") and s.get("user") == "ann"
                    and s.get("subscriptions") == ["news"] for s in sessions), "sessions list the client", body[:300])
        status, _, body = http_get(host, port, "/admin/broadcast", method="POST", headers=auth,
                                   body=json.dumps({"channel": "news", "message": {"type": "notice", "text": "hi"}}))
        c.equal((status, json.loads(body).get("delivered") if status == 200 else None), (200, 1), "broadcast delivered")
        got = await recv_json(ws)
        c.equal(got, {"type": "notice", "text": "hi"}, "the subscriber gets the broadcast as sent")
        status, _, _ = http_get(host, port, "/admin/disconnect", method="POST", headers=auth,
                                body=json.dumps({"session": welcome.get("session")}))
        c.equal(status, 200, "disconnect: 200")
        try:
            await asyncio.wait_for(ws.recv(), 5)
            code = None
        except websockets.ConnectionClosed as exc:
            code = exc.rcvd.code if exc.rcvd else None
        c.equal(code, 1008, "the disconnected client sees 1008")
        # A long reason in multi-byte characters is cut to fit a close frame
        # without splitting a character (the client would fail the UTF-8 check).
        ws2 = await connect(server.url())
        welcome2 = await recv_json(ws2)
        reason = "\u00e9" * 100  # 200 bytes of UTF-8
        status, _, _ = http_get(host, port, "/admin/disconnect", method="POST", headers=auth,
                                body=json.dumps({"session": welcome2.get("session"), "reason": reason}))
        c.equal(status, 200, "disconnect with a 200-byte reason: 200")
        try:
            await asyncio.wait_for(ws2.recv(), 5)
            got = None
        except websockets.ConnectionClosed as exc:
            got = (exc.rcvd.code, exc.rcvd.reason) if exc.rcvd else None
        c.equal(got, (1008, "\u00e9" * 61), "the reason is cut to 122 bytes at a character boundary")
        # Oversized request bodies: 413, whether declared up front or not.
        status, _, body = http_get(host, port, "/admin/broadcast", method="POST", headers=auth,
                                   body="x" * (1024 * 1024 + 1))
        c.equal(status, 413, "a body over 1 MiB: 413")
        c.check('"too_large"' in body, "413 says too_large", body[:200])
        with socket.create_connection((host, port), timeout=5) as raw:
            raw.sendall(b"POST /admin/broadcast HTTP/1.1\r\nHost: x\r\nContent-Length: 5000000000\r\n\r\n")
            head = raw.recv(4096).decode("latin-1")
        c.check(head.startswith("HTTP/1.1 413"), "a declared 5 GB body is refused before it is sent", head[:100])
        status, _, body = http_get(host, port, "/admin/broadcast", method="POST", headers=auth,
                                   body="y" * (3 * 1024 * 1024))
        c.equal(status, 413, "a 3 MiB body is read to its end and refused with 413 (no reset)")
        status, _, body = http_get(host, port, "/healthz")
        c.equal((status, body), (200, "ok"), "/healthz stays open")


async def handshake_timeout(c, binary, folder):
    cfg = write_config(folder, {"listen": {"port": 0}, "limits": {"handshake_timeout": 2},
                                "endpoints": [{"path": "/ws"}]})
    with Server(binary, ["--config", cfg]) as server:
        s = socket.create_connection((server.connect_host(), server.port))
        s.sendall(b"GET /ws HTTP/1.1\r\nHost: x\r\n")  # and never the rest
        s.settimeout(10)
        start = time.monotonic()
        try:
            data = s.recv(100)
        except OSError:
            data = b""
        took = time.monotonic() - start
        c.check(data == b"" and took < 8, "a trickled handshake is dropped (after %.1f s)" % took)
        s.close()


async def slow_consumer(c, binary, folder):
    cfg = write_config(folder, {"listen": {"port": 0}, "limits": {"max_queue_bytes": 1048576,
                                                                   "messages_per_second": 0},
                                "endpoints": [{"path": "/ws"}]})
    with Server(binary, ["--config", cfg]) as server:
        pub = await connect(server.url())
        good = await connect(server.url(), max_queue=None)
        await recv_json(pub)
        await recv_json(good)
        for ws, name in ((pub, "pub"), (good, "good")):
            await request(ws, {"type": "auth", "token": name})
        await request(good, {"type": "subscribe", "channel": "feed"})
        # The slow one: a raw socket that subscribes and then stops reading.
        slow = socket.create_connection((server.connect_host(), server.port))
        key = "dGhlIHNhbXBsZSBub25jZQ=="
        slow.sendall(("GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % key).encode())
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)

        def frame(text):
            data = text.encode()
            mask = os.urandom(4)
            head = bytes([0x81, 0x80 | len(data)]) if len(data) < 126 else bytes([0x81, 0xFE]) + len(data).to_bytes(2, "big")
            return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data))
        slow.sendall(frame('{"type":"auth","token":"slow"}') + frame('{"type":"subscribe","channel":"feed"}'))
        await asyncio.sleep(0.3)
        rss_before = rss_kib(server.proc.pid)
        payload = "x" * 8000
        count = 600  # ~4.8 MB to a reader whose queue holds 1 MiB
        received = []

        async def reader():
            while len(received) < count:
                msg = json.loads(await asyncio.wait_for(good.recv(), 20))
                if msg.get("type") == "chat":
                    received.append(msg["seq"])
        task = asyncio.ensure_future(reader())
        for i in range(count):
            await send_json(pub, {"type": "chat", "channel": "feed", "data": payload})
            await recv_json(pub)  # chat.ok: one in flight at a time
        await asyncio.wait_for(task, 30)
        rss_after = rss_kib(server.proc.pid)
        c.equal(received, list(range(1, count + 1)), "the reading subscriber gets every message in order")
        if os.environ.get("WSRELAY_SANITIZERS"):
            print("note: RSS bound not checked under sanitizers (ASan's quarantine keeps freed memory resident)")
        else:
            c.check(rss_after - rss_before < 20000,
                    "server memory stays bounded (RSS +%d KiB)" % (rss_after - rss_before))
        status, _, body = http_get(server.connect_host(), server.port, "/status")
        c.check(json.loads(body).get("slow_consumer_closes", 0) >= 1, "the slow reader was disconnected", body[:300])
        slow.close()


async def tls_listener(c, binary, folder):
    cert, key = self_signed_cert(folder)
    cfg = write_config(folder, {"listen": {"port": 0, "tls": {"cert": cert, "key": key}},
                                "endpoints": [{"path": "/ws"}]})
    server = Server(binary, ["--config", cfg])
    with server:
        context = ssl.create_default_context(cafile=cert)
        async with websockets.connect("wss://127.0.0.1:%d/ws" % server.port, ssl=context) as ws:
            got = await recv_json(ws)
            c.equal(got.get("type"), "welcome", "a wss client is welcomed over TLS")
        refused = False
        try:
            async with websockets.connect("wss://127.0.0.1:%d/ws" % server.port, ssl=ssl.create_default_context()):
                pass
        except (ssl.SSLError, OSError):
            refused = True
        c.check(refused, "a client that does not trust the certificate is refused")


async def main(c):
    binary = sys.argv[1]
    await run_scenarios(c, binary, (origins, connection_caps, rate_limits, message_type_limits, admin_routes,
                                    handshake_timeout, slow_consumer, tls_listener))


if __name__ == "__main__":
    sys.exit(run_async_main(main, Checker()))
