#!/usr/bin/python3
"""Bad input from the network, with a bystander: while one connection sends
garbage, a second client connected all along keeps chatting. Covers what the
C++ suite does not reach with a real independent client: HTTP garbage on the
port, an upgrade without its headers, a ping flood, invalid UTF-8 in a text
frame, a frame over the limit, binary where text is expected, and deep JSON.

    /usr/bin/python3 tests/python/test_bad_input.py <wsrelay> <source-dir>
"""

import asyncio
import json
import os
import sys
import tempfile

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from wsrelay_harness import (  # noqa: E402
    Checker, Server, connect, http_get, raw_http, raw_ws_session, recv_json, request, run_async_main, ws_frame)


async def main(c):
    with tempfile.TemporaryDirectory() as folder:
        config = os.path.join(folder, "config.json")
        with open(config, "w") as f:
            json.dump({"listen": {"port": 0}, "limits": {"messages_per_second": 0},
                       "endpoints": [{"path": "/ws", "max_message_size": 4096}]}, f)
        with Server(sys.argv[1], ["--config", config]) as server:
            host, port = server.connect_host(), server.port
            a = await connect(server.url())
            b = await connect(server.url())
            for ws, user in ((a, "ann"), (b, "bob")):
                await recv_json(ws)
                await request(ws, {"type": "auth", "token": user})
                await request(ws, {"type": "subscribe", "channel": "room"})
            seq = [0]

            async def bystander_ok(what):
                seq[0] += 1
                got = await request(a, {"type": "chat", "channel": "room", "data": what})
                seen = await recv_json(b)
                c.check(got.get("type") == "chat" and seen.get("data") == what,
                        "after %s, the bystanders still chat" % what, (got, seen))
                await recv_json(a)  # chat.ok

            loop = asyncio.get_running_loop()
            reply = await loop.run_in_executor(None, raw_http, host, port, b"\x16\x03\x01garbage\r\n\r\n")
            c.check(reply == b"" or reply[:10] in (b"HTTP/1.1 4", b"HTTP/1.0 4"), "HTTP garbage is refused", reply[:60])
            await bystander_ok("http garbage")

            reply = await loop.run_in_executor(
                None, raw_http, host, port, b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\n")
            c.check(not reply.startswith(b"HTTP/1.1 101"), "an upgrade without its headers is not accepted",
                    reply[:60])
            await bystander_ok("half an upgrade")

            pings = b"".join(ws_frame(0x9, b"p") for _ in range(2000))
            frames, end = await loop.run_in_executor(None, raw_ws_session, host, port, "/ws", pings, 3.0)
            pongs = sum(1 for f in frames if f[1] == 0xA)
            c.check(pongs > 0, "a ping flood is answered (%d pongs), not a crash" % pongs)
            await bystander_ok("a ping flood")

            frames, end = await loop.run_in_executor(
                None, raw_ws_session, host, port, "/ws", ws_frame(0x1, b"\xff\xfe not utf-8"), 3.0)
            closes = [f for f in frames if f[1] == 0x8]
            code = int.from_bytes(closes[0][2][:2], "big") if closes and len(closes[0][2]) >= 2 else None
            c.check(code == 1007 or end in ("eof", "reset"), "invalid UTF-8 in a text frame fails that connection "
                    "(close %s, %s)" % (code, end))
            await bystander_ok("invalid utf-8")

            big = json.dumps({"type": "chat", "channel": "room", "data": "x" * 5000}).encode()
            frames, end = await loop.run_in_executor(None, raw_ws_session, host, port, "/ws", ws_frame(0x1, big), 3.0)
            texts = [json.loads(f[2]) for f in frames if f[1] == 0x1]
            closes = [f for f in frames if f[1] == 0x8]
            c.check(any(t.get("code") == "too_large" for t in texts), "over the limit: too_large", texts[-1:])
            c.check(closes and int.from_bytes(closes[0][2][:2], "big") == 1009, "then close 1009")
            await bystander_ok("an oversized frame")

            frames, end = await loop.run_in_executor(
                None, raw_ws_session, host, port, "/ws", ws_frame(0x2, b"\x00\x01\x02"), 2.0)
            texts = [json.loads(f[2]) for f in frames if f[1] == 0x1]
            c.check(any(t.get("code") == "bad_request" for t in texts), "binary where text is expected: bad_request",
                    texts[-1:])
            await bystander_ok("a binary frame")

            deep = ("[" * 3000 + "]" * 3000).encode()
            frames, end = await loop.run_in_executor(None, raw_ws_session, host, port, "/ws", ws_frame(0x1, deep[:4000]), 2.0)
            texts = [json.loads(f[2]) for f in frames if f[1] == 0x1]
            c.check(any(t.get("code") == "bad_json" for t in texts), "deep nesting: bad_json", texts[-1:])
            await bystander_ok("deep nesting")

            status, _, body = http_get(host, port, "/healthz")
            c.equal((status, body), (200, "ok"), "the server is healthy at the end")
            await a.close()
            await b.close()


if __name__ == "__main__":
    sys.exit(run_async_main(main, Checker()))
