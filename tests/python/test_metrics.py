#!/usr/bin/python3
"""GET /metrics: the Prometheus text format, read by the reference parser
(Debian's python3-prometheus-client), with counters that move as clients
talk to the relay: the handshake latency histogram, messages and bytes,
fan-out, errors, and (with a test script) script errors and timeouts,
slow-consumer disconnects, queue drops and upstream failures.

    /usr/bin/python3 tests/python/test_metrics.py <wsrelay> <source-dir>
"""

import asyncio
import json
import os
import shutil
import socket
import sys
import tempfile

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from wsrelay_harness import (Checker, Server, connect, http_get, recv_json, recv_until, request,  # noqa: E402
                             run_async_main, send_json)

HANDSHAKE = "wsrelay_handshake_duration_seconds"


def scrape(server):
    status, headers, body = http_get(server.connect_host(), server.port, "/metrics")
    samples = {}
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            key = sample.name + "".join("{%s=%s}" % kv for kv in sorted(sample.labels.items()))
            samples[key] = sample.value
    return status, headers, samples


def scrape_histogram(server, name):
    """(type, [(le, cumulative count)] in file order, sum, count) of one histogram."""
    _, _, body = http_get(server.connect_host(), server.port, "/metrics")
    for family in text_string_to_metric_families(body):
        if family.name != name:
            continue
        buckets = [(float(s.labels["le"]), s.value) for s in family.samples if s.name == name + "_bucket"]
        total = [s.value for s in family.samples if s.name == name + "_sum"]
        count = [s.value for s in family.samples if s.name == name + "_count"]
        return family.type, buckets, total[0] if total else None, count[0] if count else None
    return None, [], None, None


async def check_handshake_histogram(c, server):
    kind, buckets, total0, count0 = scrape_histogram(server, HANDSHAKE)
    c.equal(kind, "histogram", "%s is a histogram" % HANDSHAKE)
    bounds = [le for le, _ in buckets]
    c.check(len(bounds) >= 10 and bounds[0] == 0.0005 and 5.0 in bounds and bounds[-1] == float("inf"),
            "buckets from 0.5 ms to 5 s, then +Inf", bounds)
    c.equal(bounds, sorted(bounds), "bucket bounds ascend")
    n = 5
    clients = [await connect(server.url()) for _ in range(n)]
    for ws in clients:
        await recv_json(ws)  # the welcome: the session is established
    kind, buckets, total1, count1 = scrape_histogram(server, HANDSHAKE)
    c.equal(count1 - count0, float(n), "after %d connections %s_count grew by %d" % (n, HANDSHAKE, n))
    counts = [v for _, v in buckets]
    c.check(all(a <= b for a, b in zip(counts, counts[1:])), "buckets are cumulative (never decrease)", counts)
    c.equal(counts[-1] if counts else None, count1, "the +Inf bucket equals _count")
    c.check(total1 > total0 and total1 - total0 < 60.0 * n, "_sum grew by n positive durations",
            (total0, total1))
    for ws in clients:
        await ws.close()


METRICS_LUA = r"""
-- Test script for test_metrics.py: each message type trips one counter.
local handlers = {}
function handlers.boom(session, msg) error("boom on purpose") end
function handlers.spin(session, msg) while true do end end
function handlers.flood(session, msg)
  local chunk = '"' .. string.rep("x", 4000) .. '"'  -- a JSON string
  for i = 1, 100 do
    if not session:send(chunk) then return nil end
  end
  return {type = "flooded"}
end
return handlers
"""


def free_port():
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_config(folder, slow_consumer):
    with open(os.path.join(folder, "metrics.lua"), "w") as f:
        f.write(METRICS_LUA)
    config = {
        "listen": {"host": "127.0.0.1", "port": 0},
        "limits": {"script_instructions": 100000, "max_queue_bytes": 65536, "slow_consumer": slow_consumer},
        "endpoints": [
            {"path": "/ws", "script": "metrics.lua", "max_message_size": 1024},
            {"path": "/up", "script": "metrics.lua",
             "upstream": {"url": "ws://127.0.0.1:%d/" % free_port(), "connect": "open",
                          "on_close": "close_client"}},
        ],
    }
    path = os.path.join(folder, "config-%s.json" % slow_consumer)
    with open(path, "w") as f:
        json.dump(config, f)
    return path


async def closed_code(ws, timeout=10):
    """Waits for the server to close ws; returns the close code."""
    try:
        while True:
            await asyncio.wait_for(ws.recv(), timeout)
    except Exception:  # noqa: BLE001 - ConnectionClosed, the end we wait for
        pass
    await asyncio.wait_for(ws.wait_closed(), timeout)
    return ws.close_code


async def check_failure_counters(c, binary, folder):
    """Script errors and timeouts, slow consumer, upstream failure: one of each."""
    with Server(binary, ["--config", write_config(folder, "disconnect")]) as server:
        _, _, before = scrape(server)
        ws = await connect(server.url())
        reply = await request(ws, {"type": "boom"})
        c.equal(reply.get("error", {}).get("code") if isinstance(reply.get("error"), dict) else reply.get("code"),
                "script_error", "a failing handler answers script_error")
        reply = await request(ws, {"type": "spin"})
        c.check("script_timeout" in json.dumps(reply), "a runaway handler answers script_timeout", reply)
        await send_json(ws, {"type": "flood"})
        c.equal(await closed_code(ws), 1008, "a client whose queue overflows is closed with 1008")
        up = await connect(server.url("/up"))
        c.equal(await closed_code(up), 1014, "a client whose upstream cannot connect is closed with 1014")
        _, _, after = scrape(server)

        def grew(name):
            return after.get(name, 0) - before.get(name, 0)
        c.equal(grew("wsrelay_script_errors_total"), 2.0, "script errors: the failure and the timeout")
        c.equal(grew("wsrelay_script_timeouts_total"), 1.0, "script timeouts: one")
        c.equal(grew("wsrelay_slow_consumer_disconnects_total"), 1.0, "slow-consumer disconnects: one")
        c.equal(grew("wsrelay_queue_drops_total"), 0.0, "no queue drops with slow_consumer=disconnect")
        c.check(grew("wsrelay_upstream_connects_total") >= 1, "upstream connects counted",
                grew("wsrelay_upstream_connects_total"))
        c.check(grew("wsrelay_upstream_failures_total") >= 1, "upstream failures counted",
                grew("wsrelay_upstream_failures_total"))
        c.equal(after.get("wsrelay_upstream_links"), 0.0, "no upstream link left open")
        c.equal(after.get("wsrelay_connections"), 0.0, "both clients gone")
        c.check(grew("wsrelay_errors_sent_total") >= 2, "error replies counted", grew("wsrelay_errors_sent_total"))

    with Server(binary, ["--config", write_config(folder, "drop_oldest")]) as server:
        ws = await connect(server.url())
        await send_json(ws, {"type": "flood"})
        await recv_until(ws, lambda m: isinstance(m, dict) and m.get("type") == "flooded", timeout=10)
        _, _, after = scrape(server)
        c.check(after.get("wsrelay_queue_drops_total", 0) > 0, "slow_consumer=drop_oldest: queue drops counted",
                after.get("wsrelay_queue_drops_total"))
        c.equal(after.get("wsrelay_slow_consumer_disconnects_total"), 0.0, "and nobody disconnected")
        c.equal(after.get("wsrelay_connections"), 1.0, "the flooded client is still connected")
        await ws.close()


async def main(c):
    with Server(sys.argv[1]) as server:
        status, headers, before = scrape(server)
        c.equal(status, 200, "/metrics answers 200")
        c.check(headers.get("content-type", "").startswith("text/plain; version=0.0.4"),
                "Prometheus content type", headers.get("content-type"))
        for name in ("wsrelay_connections", "wsrelay_messages_in_total", "wsrelay_publish_deliveries_total",
                     "wsrelay_script_errors_total", "wsrelay_upstream_links", "wsrelay_slow_consumer_disconnects_total",
                     "wsrelay_queue_drops_total", "wsrelay_uptime_seconds", "wsrelay_connections_total",
                     "wsrelay_messages_out_total", "wsrelay_bytes_in_total", "wsrelay_bytes_out_total",
                     "wsrelay_script_timeouts_total", "wsrelay_upstream_failures_total",
                     "wsrelay_upstream_connects_total", HANDSHAKE + "_count", HANDSHAKE + "_sum"):
            c.check(name in before, "%s is exported" % name)
        a = await connect(server.url())
        b = await connect(server.url())
        await recv_json(a)
        await recv_json(b)
        for ws, user in ((a, "ann"), (b, "bob")):
            await request(ws, {"type": "auth", "token": user})
            await request(ws, {"type": "subscribe", "channel": "room"})
        await request(a, {"type": "chat", "channel": "room", "data": "hi"})
        await recv_json(b)
        await request(a, {"type": "nope"})
        _, _, after = scrape(server)
        c.equal(after.get("wsrelay_connections"), 2.0, "two open connections")
        c.equal(after.get("wsrelay_messages_in_total", 0) - before.get("wsrelay_messages_in_total", 0), 6.0,
                "six messages in")
        c.equal(after.get("wsrelay_publish_deliveries_total"), 2.0, "one chat fanned out to two subscribers")
        c.equal(after.get("wsrelay_messages_by_type_total{type=chat}"), 1.0, "messages by type: chat")
        c.equal(after.get("wsrelay_messages_by_type_total{type=unknown}"), 1.0, "messages by type: unknown")
        out_by_type = {t: after.get("wsrelay_messages_out_by_type_total{type=%s}" % t) for t in
                       ("welcome", "auth.ok", "subscribe.ok", "chat", "chat.ok", "error")}
        c.equal(out_by_type, {"welcome": 2.0, "auth.ok": 2.0, "subscribe.ok": 2.0, "chat": 2.0, "chat.ok": 1.0,
                              "error": 1.0}, "messages out by type: each reply and both chat deliveries")
        c.equal(sum(v for k, v in after.items() if k.startswith("wsrelay_messages_out_by_type_total{")),
                after.get("wsrelay_messages_out_total"), "out by type adds up to messages out")
        c.equal(after.get("wsrelay_errors_sent_total"), 1.0, "one error reply")
        c.equal(after.get("wsrelay_endpoint_connections{endpoint=/ws}"), 2.0, "per-endpoint connections")
        c.check(after.get("wsrelay_bytes_in_total", 0) > before.get("wsrelay_bytes_in_total", 0),
                "bytes in grow")
        c.check(after.get("wsrelay_bytes_out_total", 0) > before.get("wsrelay_bytes_out_total", 0),
                "bytes out grow")
        c.check(after.get("wsrelay_messages_out_total", 0) - before.get("wsrelay_messages_out_total", 0) >= 8,
                "messages out: welcomes, replies, the chat to both",
                after.get("wsrelay_messages_out_total", 0) - before.get("wsrelay_messages_out_total", 0))
        await a.close()
        await b.close()
        await check_handshake_histogram(c, server)
    folder = tempfile.mkdtemp(prefix="wsrelay-metrics-")
    try:
        await check_failure_counters(c, sys.argv[1], folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(run_async_main(main, Checker()))
