#!/usr/bin/python3
"""Probes, script routes (issue 12 items 6-8): a route body keeps its NULs,
a script's header name, value or content_type cannot split the response (a
500 script_error instead), and the documented `static` key serves files."""

import os

from kit import Bystander, config_server, main, raw_http, temp_folder

SCRIPT = r'''
local handlers = {}
handlers.heartbeat = function(session, msg) return { type = "heartbeat", id = msg.id } end
handlers.http = {
  ["GET /nul"] = function(req) return { body = "abc\0def" } end,
  ["GET /split-name"] = function(req) return { body = "ok", headers = { ["X-A\r\nSet-Cookie: evil=1\r\nX-B"] = "v" } } end,
  ["GET /split-value"] = function(req) return { body = "ok", headers = { ["X-A"] = "v\r\nSet-Cookie: evil=1" } } end,
  ["GET /split-type"] = function(req) return { body = "ok", content_type = "text/plain\r\nSet-Cookie: evil=1" } end,
  ["GET /split-lf"] = function(req) return { body = "ok", headers = { ["X-A"] = "v\nSet-Cookie: evil=1" } } end,
}
return handlers
'''


def get(server, path):
    answer = raw_http(server.connect_host(), server.port,
                      ("GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % path).encode())
    head, _, body = answer.partition(b"\r\n\r\n")
    return head.decode("latin-1"), body


async def group(c, binary, source):
    with temp_folder() as folder:
        os.mkdir(os.path.join(folder, "site"))
        with open(os.path.join(folder, "site", "index.html"), "w") as f:
            f.write("<p>static works</p>")
        config = {"static": "site", "endpoints": [{"path": "/ws", "script": "routes.lua"}]}
        with config_server(binary, folder, config, files={"routes.lua": SCRIPT}) as server:
            by = await Bystander(c, server, welcome=False).open()
            head, body = get(server, "/nul")
            c.check(body == b"abc\x00def" and "content-length: 7" in head.lower(),
                    "a route body with a NUL: all 7 bytes, Content-Length 7", (head, body))
            await by.still_served("a route body with a NUL")
            for path in ("/split-name", "/split-value", "/split-type", "/split-lf"):
                head, body = get(server, path)
                c.check(head.startswith("HTTP/1.1 500") and "set-cookie" not in head.lower() and b"script_error" in body,
                        "%s: 500 script_error, no injected header" % path, (head, body))
                await by.still_served("route %s" % path)
            head, body = get(server, "/")
            c.check(head.startswith("HTTP/1.1 200") and b"static works" in body, "the 'static' folder is served", head)
            await by.still_served("a static file")
            await by.close()


if __name__ == "__main__":
    main(group)
