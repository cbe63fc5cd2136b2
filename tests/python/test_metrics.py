#!/usr/bin/python3
"""GET /metrics: the Prometheus text format, read by the reference parser
(Debian's python3-prometheus-client), with counters that move as a client
talks to the relay.

    /usr/bin/python3 tests/python/test_metrics.py <wsrelay> <source-dir>
"""

import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from wsrelay_harness import Checker, Server, connect, http_get, recv_json, request, run_async_main  # noqa: E402


def scrape(server):
    status, headers, body = http_get(server.connect_host(), server.port, "/metrics")
    samples = {}
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            key = sample.name + "".join("{%s=%s}" % kv for kv in sorted(sample.labels.items()))
            samples[key] = sample.value
    return status, headers, samples


async def main(c):
    with Server(sys.argv[1]) as server:
        status, headers, before = scrape(server)
        c.equal(status, 200, "/metrics answers 200")
        c.check(headers.get("content-type", "").startswith("text/plain; version=0.0.4"),
                "Prometheus content type", headers.get("content-type"))
        for name in ("wsrelay_connections", "wsrelay_messages_in_total", "wsrelay_publish_deliveries_total",
                     "wsrelay_script_errors_total", "wsrelay_upstream_links", "wsrelay_slow_consumer_disconnects_total",
                     "wsrelay_queue_drops_total", "wsrelay_uptime_seconds"):
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
        c.equal(after.get("wsrelay_errors_sent_total"), 1.0, "one error reply")
        c.equal(after.get("wsrelay_endpoint_connections{endpoint=/ws}"), 2.0, "per-endpoint connections")
        await a.close()
        await b.close()


if __name__ == "__main__":
    sys.exit(run_async_main(main, Checker()))
