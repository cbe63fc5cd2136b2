#!/usr/bin/python3
"""Issue 12, items 6-8: what a script route answers reaches the client whole
and cannot split the response, and the documented `static` key serves files.

- a body with a NUL byte keeps every byte (it was cut at the NUL:
  Content-Length: 3 for "abc\\0def");
- a header name, header value or content_type with CR/LF (or a name that is
  no token) makes the route a 500 script_error whose log line names the
  field, instead of writing the script's bytes into the head;
- `"static": "<folder>"` is accepted and serves the folder (it was refused
  as an unknown key), and a missing folder is an error naming the key.

    /usr/bin/python3 tests/python/test_route_replies.py <wsrelay> <source-dir>
"""

import json
import os
import subprocess
import sys
import tempfile

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from wsrelay_harness import Checker, Server, raw_http  # noqa: E402

SCRIPT = r'''
local handlers = {}
handlers.heartbeat = function(session, msg) return { type = "heartbeat", id = msg.id } end
handlers.http = {
  ["GET /nul"] = function(req) return { body = "abc\0def" } end,
  ["GET /nul-string"] = function(req) return "x\0y\0z" end,
  ["GET /split-name"] = function(req) return { body = "ok", headers = { ["X-A\r\nSet-Cookie: evil=1\r\nX-B"] = "v" } } end,
  ["GET /split-value"] = function(req) return { body = "ok", headers = { ["X-A"] = "v\r\nSet-Cookie: evil=1" } } end,
  ["GET /split-type"] = function(req) return { body = "ok", content_type = "text/plain\r\nSet-Cookie: evil=1" } end,
  ["GET /bad-name"] = function(req) return { body = "ok", headers = { ["X A"] = "v" } } end,
  ["GET /fine"] = function(req) return { body = "ok", headers = { ["X-Fine"] = "yes" }, content_type = "text/x-ok" } end,
}
return handlers
'''


def raw_get(host, port, path):
    """The whole raw answer to a GET (Connection: close)."""
    return raw_http(host, port, ("GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % path).encode())


def split(answer):
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.setdefault(name.strip().lower(), []).append(value.strip())
    return lines[0], headers, body


def main(c):
    binary = sys.argv[1]
    with tempfile.TemporaryDirectory() as folder:
        with open(os.path.join(folder, "routes.lua"), "w") as f:
            f.write(SCRIPT)
        site = os.path.join(folder, "site")
        os.mkdir(site)
        with open(os.path.join(site, "index.html"), "w") as f:
            f.write("<p>static works</p>")
        config = os.path.join(folder, "config.json")
        with open(config, "w") as f:
            json.dump({"listen": {"port": 0}, "static": "site",
                       "endpoints": [{"path": "/ws", "script": "routes.lua"}]}, f)
        with Server(binary, ["--config", config]) as server:
            host, port = server.connect_host(), server.port
            status, headers, body = split(raw_get(host, port, "/nul"))
            c.check(body == b"abc\x00def" and headers.get("content-length") == ["7"],
                    "a body with a NUL keeps its 7 bytes", (status, headers.get("content-length"), body))
            status, headers, body = split(raw_get(host, port, "/nul-string"))
            c.check(body == b"x\x00y\x00z", "a string reply with NULs keeps every byte", body)
            for path, field in (("/split-name", "X-A"), ("/split-value", "'X-A'"), ("/split-type", "content_type"),
                                ("/bad-name", "X A")):
                status, headers, body = split(raw_get(host, port, path))
                c.check(status.startswith("HTTP/1.1 500") and "set-cookie" not in headers,
                        "%s: 500, and the script's bytes do not become a header" % path, (status, headers))
                c.check(b"script_error" in body, "%s: the body says script_error" % path, body)
                # The log line is read by a thread: it may land just after the answer.
                logged = server.wait_for_stderr(
                    lambda lines: any(path[1:] in line and field in line and "ERROR" in line for line in lines), 5)
                c.check(logged, "%s: an ERROR log line names the route and %s" % (path, field))
            status, headers, body = split(raw_get(host, port, "/fine"))
            c.check(status.startswith("HTTP/1.1 200") and headers.get("x-fine") == ["yes"]
                    and headers.get("content-type") == ["text/x-ok"], "a well-formed header still goes out",
                    (status, headers))
            status, headers, body = split(raw_get(host, port, "/"))
            c.check(status.startswith("HTTP/1.1 200") and b"static works" in body,
                    "the 'static' folder is served at /", (status, body[:80]))
        bad = os.path.join(folder, "bad.json")
        with open(bad, "w") as f:
            json.dump({"static": "no-such-folder", "endpoints": [{"path": "/ws"}]}, f)
        run = subprocess.run([binary, "--check", "--config", bad], capture_output=True, text=True, timeout=30)
        c.check(run.returncode != 0 and "static: not a folder" in run.stderr,
                "a 'static' folder that does not exist is an error naming the key", run.stderr[-300:])
    return c.report()


if __name__ == "__main__":
    sys.exit(main(Checker()))
