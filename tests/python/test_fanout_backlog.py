#!/usr/bin/python3
"""Backlogged connections get every frame whole and in order.

A connection with several frames queued has them written several per
lws_write, with WebSocket headers the relay makes itself (plugins/
protocol_wsrelay, write_batch). A broken header, a frame cut at the edge of a
batch or of a partial socket write, a frame written twice or out of order:
the client would see it here. The clients are python3-websockets on sockets
with a small receive buffer that stop reading while the server queues a burst
of frames of every header size (0 to 125 bytes: 2-byte header; 126 to 65535:
4 bytes; more: 10 bytes), some over the 16 KiB a batch holds, so writes are
cut part way and frames wait in the queue; then they read everything.

  * fan-out: one publish per frame to a channel with a slow and a reading
    subscriber (text frames);
  * a burst a session sends to itself and then closes (4001): every frame
    before the close frame, the close code intact;
  * binary and text frames interleaved, from an upstream passed through byte
    for byte;
  * the same burst over a TLS listener.

    /usr/bin/python3 tests/python/test_fanout_backlog.py <wsrelay> <source-dir>
"""

import asyncio
import json
import os
import socket
import ssl
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import websockets  # noqa: E402

from wsrelay_harness import (  # noqa: E402
    Checker, Server, close_quietly, run_async_main, run_scenarios, self_signed_cert)

# Every header size and its edges, frames around the 16 KiB batch, large ones;
# small frames in between so that batches form around them.
EDGES = [0, 1, 2, 125, 126, 127, 300, 4000, 16370, 16380, 16384, 65535, 65536, 70000, 200000]
SMALL = [5, 20, 60, 110, 124, 125, 126, 130, 200, 1000]


def sizes():
    out = []
    for i, edge in enumerate(EDGES):
        out.extend(SMALL[(i + k) % len(SMALL)] for k in range(6))
        out.append(edge)
    out.extend(SMALL * 3)
    return out


SIZES = sizes()

# Frame i of a burst: its number, then one letter repeated, cut to its size
# (the same in the script below).
def payload(i, size):
    return ("%d:" % i + chr(97 + i % 26) * size)[:size]


SCRIPT = r"""
-- test_fanout_backlog.py: frames of exact sizes on demand.
local handlers = { json = false }

local function payload(i, size)
  return (i .. ":" .. string.rep(string.char(97 + i % 26), size)):sub(1, size)
end

local function each_size(list, f)
  local i = 0
  for n in list:gmatch("%d+") do
    f(i, tonumber(n))
    i = i + 1
  end
end

function handlers.on_text(session, text)
  local verb, list = text:match("^(%a+) ?(.*)$")
  if verb == "sub" then
    session:subscribe("feed")
    return "subscribed"
  elseif verb == "pub" then
    each_size(list, function(i, size) relay.publish("feed", payload(i, size)) end)
    return "published"
  elseif verb == "burst" then
    each_size(list, function(i, size) session:send(payload(i, size)) end)
    session:close(4001, "done")
  end
end

return handlers
"""


def small_socket(host, port):
    """A connected TCP socket whose receive window is a few KiB, so that the
    server's writes stop short while the client is not reading."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((host, port))
    return sock


async def slow_client(url, host, port, **kwargs):
    # max_queue / read_limit: the library itself stops reading once a frame
    # or two wait in it, instead of draining the socket into its own buffer.
    return await asyncio.wait_for(websockets.connect(url, sock=small_socket(host, port), max_size=None, max_queue=1,
                                                     read_limit=4096, ping_interval=None, close_timeout=2,
                                                     **kwargs), 10)


async def read_frames(ws, count, timeout=30):
    got = []
    for _ in range(count):
        got.append(await asyncio.wait_for(ws.recv(), timeout))
    return got


def first_difference(got, expected):
    """None if equal, else a short description of the first difference."""
    for i, (g, e) in enumerate(zip(got, expected)):
        if g != e:
            kind = lambda v: "%s of %d bytes" % ("binary" if isinstance(v, bytes) else "text", len(v))
            return "frame %d: got %s starting %r, expected %s starting %r" % (
                i, kind(g), g[:24], kind(e), e[:24])
    if len(got) != len(expected):
        return "got %d frames, expected %d" % (len(got), len(expected))
    return None


def write_config(folder, endpoints, listen=None):
    script = os.path.join(folder, "backlog.lua")
    with open(script, "w") as f:
        f.write(SCRIPT)
    for ep in endpoints:
        ep["script"] = script
        ep["max_message_size"] = 1048576
    cfg = os.path.join(folder, "config.json")
    with open(cfg, "w") as f:
        json.dump({"listen": listen or {"host": "127.0.0.1", "port": 0},
                   "limits": {"messages_per_second": 0, "max_queue_bytes": 16 * 1048576},
                   "endpoints": endpoints}, f)
    return cfg


async def fan_out(c, binary, folder):
    cfg = write_config(folder, [{"path": "/ws"}])
    expected = [payload(i, n) for i, n in enumerate(SIZES)]
    with Server(binary, ["--config", cfg]) as server:
        host = server.connect_host()
        slow = await slow_client(server.url(), host, server.port)
        reader = await websockets.connect(server.url(), max_size=None, max_queue=None, ping_interval=None)
        pub = await websockets.connect(server.url(), max_size=None, ping_interval=None)
        try:
            # Batched writes bypass lws's per-frame extension processing: the
            # server's vhosts must negotiate none (protocol_wsrelay.cpp,
            # may_batch_writes), even when the client offers one.
            c.check("permessage-deflate" in (reader.request_headers.get("Sec-WebSocket-Extensions") or ""),
                    "the client offers permessage-deflate")
            c.equal(reader.extensions, [], "no WebSocket extension is negotiated")
            for ws in (slow, reader):
                await ws.send("sub")
                c.equal(await asyncio.wait_for(ws.recv(), 5), "subscribed", "a subscriber is in the channel")
            # The slow one reads nothing until everything is published.
            reading = asyncio.ensure_future(read_frames(reader, len(expected)))
            await pub.send("pub " + ",".join(str(n) for n in SIZES))
            c.equal(await asyncio.wait_for(pub.recv(), 10), "published", "the burst is published")
            got_reader = await reading
            c.check(first_difference(got_reader, expected) is None,
                    "a reading subscriber gets all %d frames whole and in order" % len(expected),
                    first_difference(got_reader, expected))
            await asyncio.sleep(0.5)  # the slow one's queue and socket stay full meanwhile
            got_slow = await read_frames(slow, len(expected))
            c.check(first_difference(got_slow, expected) is None,
                    "a subscriber that stopped reading gets all %d frames whole and in order" % len(expected),
                    first_difference(got_slow, expected))
            # Still in step: one more publish arrives as the next frame.
            await pub.send("pub 7")
            await asyncio.wait_for(pub.recv(), 5)
            c.equal(await asyncio.wait_for(slow.recv(), 5), payload(0, 7), "the next publish follows the backlog")
        finally:
            for ws in (slow, reader, pub):
                await close_quietly(ws)
        c.check(server.alive(), "the server is still running")


async def burst_then_close(c, url, host, port, what, ssl_context=None):
    expected = [payload(i, n) for i, n in enumerate(SIZES)]
    kwargs = {"ssl": ssl_context, "server_hostname": "localhost"} if ssl_context else {}
    ws = await slow_client(url, host, port, **kwargs)
    try:
        await ws.send("burst " + ",".join(str(n) for n in SIZES))
        await asyncio.sleep(0.5)
        got = []
        try:
            while True:
                got.append(await asyncio.wait_for(ws.recv(), 30))
        except websockets.ConnectionClosed as closed:
            code, reason = closed.code, closed.reason
        c.check(first_difference(got, expected) is None,
                "%s: all %d frames queued before a close arrive whole and in order" % (what, len(expected)),
                first_difference(got, expected))
        c.equal((code, reason), (4001, "done"), "%s: then the close frame, its code and reason intact" % what)
    finally:
        await close_quietly(ws)


async def burst(c, binary, folder):
    cfg = write_config(folder, [{"path": "/ws"}])
    with Server(binary, ["--config", cfg]) as server:
        await burst_then_close(c, server.url(), server.connect_host(), server.port, "ws://")


async def burst_tls(c, binary, folder):
    cert, key = self_signed_cert(folder)
    cfg = write_config(folder, [{"path": "/ws"}],
                       listen={"host": "127.0.0.1", "port": 0, "tls": {"cert": cert, "key": key}})
    with Server(binary, ["--config", cfg]) as server:
        context = ssl.create_default_context(cafile=cert)
        await burst_then_close(c, "wss://127.0.0.1:%d/ws" % server.port, "127.0.0.1", server.port, "wss://",
                               ssl_context=context)


async def upstream_binary(c, binary, folder):
    # Text and binary frames interleaved, binary ones with every byte value.
    expected = []
    for i, n in enumerate(SIZES):
        if i % 3 == 1:
            expected.append(bytes((i + k) % 256 for k in range(n)))
        else:
            expected.append(payload(i, n))

    async def upstream(ws, path=None):
        for frame in expected:
            await ws.send(frame)
        await ws.wait_closed()

    async with websockets.serve(upstream, "127.0.0.1", 0, max_size=None) as up:
        port = up.sockets[0].getsockname()[1]
        cfg = write_config(folder, [{"path": "/up", "upstream": {"url": "ws://127.0.0.1:%d/" % port}}])
        with Server(binary, ["--config", cfg]) as server:
            ws = await slow_client(server.url("/up"), server.connect_host(), server.port)
            try:
                await asyncio.sleep(0.5)  # the upstream sends everything; the client reads nothing yet
                got = await read_frames(ws, len(expected))
                c.check(first_difference(got, expected) is None,
                        "text and binary frames from an upstream arrive whole, in order, each its own type",
                        first_difference(got, expected))
            finally:
                await close_quietly(ws)


async def main(c):
    binary = sys.argv[1]
    await run_scenarios(c, binary, (fan_out, burst, burst_tls, upstream_binary))


if __name__ == "__main__":
    sys.exit(run_async_main(main, Checker()))
