#!/usr/bin/python3
"""The one JSON rule (issue 12) against a live server: a repeated key, a
number no double holds, a leading zero and an integer beyond int64 each get
bad_json naming the problem, never script_error; integers beyond 2^53 come
back exactly; a bystander keeps getting heartbeat answers throughout.

    /usr/bin/python3 tests/python/test_json_strict.py <wsrelay> <source-dir>
"""

import json
import os
import sys
import tempfile

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from wsrelay_harness import Checker, Server, connect, http_get, recv_json, run_async_main  # noqa: E402,F401

SCRIPT = """
return {
  echo = function(session, msg) return { type = "echo", id = msg.id, n = msg.n } end,
  heartbeat = function(session, msg) return { type = "heartbeat", id = msg.id } end,
}
"""


def script_errors(host, port):
    status, _, body = http_get(host, port, "/status")
    return json.loads(body).get("script_errors") if status == 200 else None


async def main(c):
    with tempfile.TemporaryDirectory() as folder:
        with open(os.path.join(folder, "echo.lua"), "w") as f:
            f.write(SCRIPT)
        config = os.path.join(folder, "config.json")
        with open(config, "w") as f:
            json.dump({"listen": {"port": 0}, "limits": {"messages_per_second": 0},
                       "endpoints": [{"path": "/ws", "script": os.path.join(folder, "echo.lua")}]}, f)
        with Server(sys.argv[1], ["--config", config]) as server:
            host, port = server.connect_host(), server.port
            a = await connect(server.url())
            b = await connect(server.url())
            beats = [0]

            async def bystander_ok(what):
                beats[0] += 1
                await b.send(json.dumps({"type": "heartbeat", "id": beats[0]}))
                got = await recv_json(b)
                c.check(got.get("id") == beats[0] and got.get("type") != "error",
                        "after %s, the bystander's heartbeat is answered" % what, got)

            before = script_errors(host, port)
            cases = [
                ('{"type":"heartbeat","type":"echo","id":1}', 'duplicate key "type"'),
                ('{"type":"echo","id":2,"n":1e400}', "number out of range"),
                ('{"type":"echo","id":3,"n":01}', "leading zero"),
                ('{"type":"echo","id":4,"n":-01}', "leading zero"),
                ('{"type":"echo","id":5,"n":9223372036854775809}', "number out of range"),
            ]
            for text, words in cases:
                await a.send(text)
                got = await recv_json(a)
                c.check(got.get("code") == "bad_json" and words in got.get("message", ""),
                        "%s: bad_json naming %r" % (text, words), got)
                await bystander_ok(text)
            c.equal(script_errors(host, port), before, "script_errors does not grow for any of them")

            for n in ("9007199254740993", "-9223372036854775808", "9223372036854775807"):
                await a.send('{"type":"echo","id":%s,"n":%s}' % (n, n))
                raw = await a.recv()
                c.check('"n":%s' % n in raw and '"id":%s' % n in raw, "%s echoes back exactly" % n, raw)
            # The id in an error reply is exact too (not through the flat path).
            await a.send('{"type":"nope","id":9007199254740993,"x":[1]}')
            raw = await a.recv()
            c.check('"id":9007199254740993' in raw, "an error reply echoes a big id exactly", raw)
            await bystander_ok("the echoes")
            await a.close()
            await b.close()


if __name__ == "__main__":
    sys.exit(run_async_main(main, Checker()))
