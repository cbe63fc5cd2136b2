#!/usr/bin/python3
"""Probes, client JSON (issue 12 items 3, 10 and the number rules): a repeated
key, a number no double holds, a leading zero and an integer beyond int64
are each refused with bad_json before any handler runs (so routing, the
per-type rate limit and the script cannot read different values, and
script_errors does not grow); 64-bit integers come back exactly."""

import json

from kit import Bystander, close_quietly, config_server, connect, http_get, main, recv_json, temp_folder


def script_errors(server):
    status, _, body = http_get(server.connect_host(), server.port, "/status")
    return json.loads(body).get("script_errors") if status == 200 else None


async def group(c, binary, source):
    # chat is limited to one per minute: the duplicate-key bypass would need
    # routing to read "heartbeat" and the script "chat".
    config = {"limits": {"message_types": {"chat": {"per_second": 0.01, "burst": 1}}},
              "endpoints": [{"path": "/ws"}]}
    with temp_folder() as folder, config_server(binary, folder, config) as server:
        by = await Bystander(c, server).open()
        ws = await connect(server.url("/ws"))
        await recv_json(ws)
        before = script_errors(server)
        refused = [
            ('{"type":"heartbeat","type":"chat","id":1,"channel":"x","data":"y"}', 'duplicate key "type"'),
            ('{"type":"heartbeat","id":2,"x":{"a":1,"a":2}}', 'duplicate key "a"'),
            ('{"type":"heartbeat","id":3,"t\\u0079pe":"chat"}', 'duplicate key "type"'),
            ('{"type":"heartbeat","id":1e400}', "number out of range"),
            ('{"type":"heartbeat","id":-1e400}', "number out of range"),
            ('{"type":"heartbeat","id":01}', "leading zero"),
            ('{"type":"heartbeat","id":9223372036854775809}', "number out of range"),
            ('{"type":"heartbeat","id":-9223372036854775809}', "number out of range"),
        ]
        for text, words in refused:
            await ws.send(text)
            got = await recv_json(ws)
            c.check(got.get("type") == "error" and got.get("code") == "bad_json" and words in got.get("message", ""),
                    "%s: bad_json naming %r" % (text, words), got)
            await by.still_served(text)
        c.equal(script_errors(server), before, "none of them counts as a script error")
        for n in ("9007199254740993", "-9223372036854775808", "9223372036854775807"):
            await ws.send('{"type":"heartbeat","id":%s}' % n)
            raw = await ws.recv()
            c.check('"id":%s' % n in raw, "id %s comes back exactly" % n, raw)
            await by.still_served("id %s" % n)
        await close_quietly(ws)
        await by.close()


if __name__ == "__main__":
    main(group)
