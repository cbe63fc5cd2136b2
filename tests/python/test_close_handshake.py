#!/usr/bin/env python3
"""The closing handshake when the server ends a connection, against the real
binary with python3-websockets and bare sockets.

A client that is still sending when the server closes it (a flood over the
rate limit, a message over the size limit, a script's session:close) must
read the server's close code, not 1006: the server writes its close frame,
reads and drops what the client sent meanwhile, and ends the TCP connection
when the client's close arrives, or after 3 s without one (RFC 6455 §7.1.1).
Closing the socket with unread input instead makes the kernel send a reset,
which the client's stack reports before the close frame it had not read.

    /usr/bin/python3 tests/python/test_close_handshake.py <wsrelay> <source-dir>
"""
import asyncio
import json
import os
import ssl
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import websockets  # noqa: E402
from wsrelay_harness import (  # noqa: E402
    Checker, Server, connect, parse_frames, pump_once, raw_ws_open, recv_json, request, run_async_main,
    run_scenarios, self_signed_cert, usage_args, ws_frame)

ROUNDS = 8
CLOSE_ACK_SECONDS = 3  # how long the server waits for the client's close (kCloseAckSeconds)

CLOSE_LUA = r"""
local handlers = {}
function handlers.on_text(session, text)
  if text == "bye" then
    session:close(4001, "bye for now")
  elseif text == "fill" then
    -- More than a reader that never reads can take in: the close waits behind it.
    for _ = 1, 6 do session:send(string.rep("x", 500000)) end
    session:close(4002, "filled")
  end
end
return handlers
"""
CLOSE_FLUSH_SECONDS = 10  # queued frames and the close frame must be out by then (kCloseFlushSeconds)
MAX_DROP_WHILE_CLOSING = 16 << 20  # bytes read and dropped after the close began (kMaxDropWhileClosing)


def write_config(folder, limits, extra_endpoints=(), tls=None):
    path = os.path.join(folder, "config.json")
    listen = {"host": "127.0.0.1", "port": 0}
    if tls is not None:
        listen["tls"] = tls
    with open(path, "w") as f:
        json.dump({"listen": listen, "limits": limits,
                   "endpoints": [{"path": "/ws", "max_message_size": 4096}] + list(extra_endpoints)}, f)
    return path


RATE_LIMITS = {"messages_per_second": 5, "message_burst": 5, "rate_limit_close_after": 10}


def heartbeats(n):
    return [json.dumps({"type": "heartbeat", "id": i}) for i in range(n)]


async def keep_sending_then_read(url, first, then, **kwargs):
    """Sends `first` and then every message of `then` without reading, then
    reads until the server closes; returns (close code, reason)."""
    ws = await connect(url, max_size=None, **kwargs)
    try:
        await recv_json(ws)  # the welcome
        try:
            await ws.send(first)
            for message in then:
                await ws.send(message)
            while True:
                await asyncio.wait_for(ws.recv(), 10)
        except websockets.ConnectionClosed:
            pass
        await asyncio.wait_for(ws.wait_closed(), 10)
        return ws.close_code, ws.close_reason
    finally:
        await ws.close()


async def still_sending_clients(c, binary, folder):
    cfg = write_config(folder, RATE_LIMITS, [{"path": "/script", "script": "close.lua"}])
    with open(os.path.join(folder, "close.lua"), "w") as f:
        f.write(CLOSE_LUA)
    with Server(binary, ["--config", cfg]) as server:
        seen = [await keep_sending_then_read(server.url(), json.dumps({"type": "heartbeat", "id": "x"}),
                                             heartbeats(200)) for _ in range(ROUNDS)]
        c.equal(seen, [(1008, "rate limit exceeded")] * ROUNDS,
                "a client flooding past the rate limit reads 1008 every time, though still sending")

        seen = [await keep_sending_then_read(server.url(), "x" * 2_000_000, heartbeats(300))
                for _ in range(ROUNDS)]
        c.equal(seen, [(1009, "message too large")] * ROUNDS,
                "a client that sends 2 MB to a 4 KiB endpoint, then more, reads 1009 every time")

        # No welcome on the scripted endpoint: the first frame read is the close.
        codes = []
        for _ in range(ROUNDS):
            ws = await connect(server.url("/script"))
            try:
                await ws.send("bye")
                for message in heartbeats(300):
                    await ws.send(message)
            except websockets.ConnectionClosed:
                pass
            await asyncio.wait_for(ws.wait_closed(), 10)
            codes.append((ws.close_code, ws.close_reason))
        c.equal(codes, [(4001, "bye for now")] * ROUNDS,
                "session:close(4001, …) reaches a client that keeps sending")

        other = await connect(server.url())
        await recv_json(other)
        got = await request(other, {"type": "heartbeat", "id": "after"})
        c.equal(got.get("type"), "heartbeat", "the server still serves everyone else")
        await other.close()


async def over_tls(c, binary, folder):
    # The close frame is written raw, under TLS as in the clear.
    cert, key = self_signed_cert(folder)
    cfg = write_config(folder, RATE_LIMITS, tls={"cert": cert, "key": key})
    with Server(binary, ["--config", cfg]) as server:
        context = ssl.create_default_context(cafile=cert)
        seen = [await keep_sending_then_read("wss://127.0.0.1:%d/ws" % server.port,
                                             json.dumps({"type": "heartbeat", "id": "x"}), heartbeats(200),
                                             ssl=context, server_hostname="localhost")
                for _ in range(3)]
        c.equal(seen, [(1008, "rate limit exceeded")] * 3, "over TLS too, a flooding client reads 1008")


def flood_until_close(host, port, answer):
    """A bare client floods heartbeats until the server's close frame
    arrives; answers it if `answer`. Returns (close payload, frames after the
    close, how the TCP connection ended, seconds from the close frame to the
    end)."""
    sock, data, failure = raw_ws_open(host, port, "/ws")
    if failure is not None:
        raise AssertionError("connect: " + failure)
    try:
        sock.setblocking(False)
        flood = b"".join(ws_frame(0x1, m) for m in heartbeats(100))
        sent = 0
        close_payload, close_at, after = None, None, []
        deadline = time.monotonic() + 20
        end = "timeout"
        while time.monotonic() < deadline:
            # Once the close frame is in, the client sends nothing but its answer.
            sent, chunk, ended = pump_once(sock, flood if close_at is None else b"", sent, 0.1)
            if ended is not None:
                end = ended
                break
            data += chunk
            if close_at is None:
                frames = parse_frames(data)
                closes = [i for i, f in enumerate(frames) if f[1] == 0x8]
                if closes:
                    close_at = time.monotonic()
                    close_payload = frames[closes[0]][2]
                    if answer:
                        try:
                            sock.setblocking(True)
                            sock.sendall(ws_frame(0x8, close_payload[:2]))
                            sock.setblocking(False)
                        except OSError:
                            end = "reset before the answer"
                            break
        if close_at is not None:
            frames = parse_frames(data)
            first_close = next(i for i, f in enumerate(frames) if f[1] == 0x8)
            after = frames[first_close + 1:]
        waited = time.monotonic() - close_at if close_at is not None else None
        return close_payload, after, end, waited
    finally:
        sock.close()


async def bare_clients(c, binary, folder):
    cfg = write_config(folder, RATE_LIMITS)
    loop = asyncio.get_running_loop()
    with Server(binary, ["--config", cfg]) as server:
        host, port = server.connect_host(), server.port

        payload, after, end, waited = await loop.run_in_executor(None, flood_until_close, host, port, True)
        c.equal(payload, b"\x03\xf0rate limit exceeded", "the close frame carries 1008 and the reason")
        c.equal(after, [], "nothing follows the close frame")
        c.equal(end, "eof", "answered: the server ends the TCP connection cleanly (FIN, not a reset)")
        c.check(waited is not None and waited < CLOSE_ACK_SECONDS - 1,
                "answered: it ends on the client's close, not at the %d s limit" % CLOSE_ACK_SECONDS, waited)

        # Never answered: the server gives up after its limit, and serves
        # another client meanwhile.
        silent = loop.run_in_executor(None, flood_until_close, host, port, False)
        await asyncio.sleep(0.5)
        other = await connect(server.url())
        await recv_json(other)
        got = await request(other, {"type": "heartbeat", "id": "meanwhile"})
        c.equal(got.get("type"), "heartbeat", "another client is served while one close waits for its answer")
        await other.close()
        payload, after, end, waited = await silent
        c.equal(payload, b"\x03\xf0rate limit exceeded", "unanswered: the close frame went out")
        c.equal(end, "eof", "unanswered: the server still ends the TCP connection")
        c.check(waited is not None and CLOSE_ACK_SECONDS - 1 <= waited <= CLOSE_ACK_SECONDS + 5,
                "unanswered: it ends about %d s after the close frame" % CLOSE_ACK_SECONDS, waited)
    c.check(server.stderr_text().count("close code=1008") == 2, "the server logged both closes with 1008",
            server.stderr_text()[-600:])


def wait_for_log(server, needle, timeout):
    """Seconds until a stderr line contains needle, or None after timeout."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if any(needle in line for line in server.stderr_lines):
            return time.monotonic() - start
        time.sleep(0.05)
    return None


def stream_oversized(host, port, megabytes):
    """Declares a 64 MiB frame and streams `megabytes` of it without reading;
    returns how many bytes went out before the server stopped taking them."""
    sock, _, failure = raw_ws_open(host, port, "/ws")
    if failure is not None:
        raise AssertionError("connect: " + failure)
    try:
        sock.sendall(bytes([0x81, 0x80 | 127]) + (64 << 20).to_bytes(8, "big") + b"\0\0\0\0")
        chunk = b"x" * 65536
        sent = 0
        try:
            while sent < megabytes << 20:
                sock.sendall(chunk)
                sent += len(chunk)
        except OSError:
            pass
        return sent
    finally:
        sock.close()


async def bounded_closes(c, binary, folder):
    cfg = write_config(folder, RATE_LIMITS, [{"path": "/script", "script": "close.lua"}])
    with open(os.path.join(folder, "close.lua"), "w") as f:
        f.write(CLOSE_LUA)
    loop = asyncio.get_running_loop()
    with Server(binary, ["--config", cfg]) as server:
        host, port = server.connect_host(), server.port

        # The rest of an oversized message is read and dropped only so far.
        sent = await loop.run_in_executor(None, stream_oversized, host, port, 48)
        c.check(sent < 48 << 20, "a client streaming 48 MB after a 1009 is cut off (%.1f MB went out)" % (sent / 1e6))
        waited = await loop.run_in_executor(None, wait_for_log, server, "after its connection began to close", 5)
        c.check(waited is not None, "the server logs why it hung up on the oversized stream",
                server.stderr_text()[-600:])

        # A client that never reads: the close cannot go out behind ~3 MB of
        # queued frames; the server gives up after CLOSE_FLUSH_SECONDS.
        sock, _, failure = raw_ws_open(host, port, "/script", rcvbuf=4096)
        c.check(failure is None, "connect the non-reader", failure)
        try:
            sock.sendall(ws_frame(0x1, "fill"))
            other = await connect(server.url())
            await recv_json(other)
            got = await request(other, {"type": "heartbeat", "id": "meanwhile"})
            c.equal(got.get("type"), "heartbeat", "another client is served while a close waits to be written")
            await other.close()
            waited = await loop.run_in_executor(None, wait_for_log, server, "close code=4002",
                                                CLOSE_FLUSH_SECONDS + 10)
            c.check(waited is not None and CLOSE_FLUSH_SECONDS - 2 <= waited,
                    "a close stuck behind unread frames ends after about %d s" % CLOSE_FLUSH_SECONDS, waited)
        finally:
            sock.close()


async def main(c):
    binary, _ = usage_args()
    await run_scenarios(c, binary, [still_sending_clients, over_tls, bare_clients, bounded_closes])


if __name__ == "__main__":
    sys.exit(run_async_main(main, Checker()))
