#!/usr/bin/python3
"""Probes, the WebSocket upgrade (issue 12 item 1 and RFC 6455 §4.2.1): an
upgrade naming the relay's upstream-client protocol crashed the process with
one unauthenticated request; every subprotocol, known or not, now gets 400
or is served. Upgrades over HTTP/1.0 or with a malformed Sec-WebSocket-Key
get 400; a missing or other Sec-WebSocket-Version than 13 gets 426 naming
the version served."""

import base64

from kit import Bystander, Server, clean_env, http_status, main, raw_http, upgrade_request


def answer(server, request):
    return raw_http(server.connect_host(), server.port, request, timeout=5, until=b"\r\n\r\n")


async def group(c, binary, source):
    with Server(binary, env=clean_env()) as server:
        by = await Bystander(c, server).open()
        for path in ("/ws", "/nowhere"):
            for protocols in ("wsrelay-upstream", "chat, wsrelay-upstream", "wsrelay-upstream,wsrelay-upstream",
                              "no-such-protocol", " , ,"):
                got = answer(server, upgrade_request(path, headers=[("Sec-WebSocket-Protocol", protocols)]))
                c.equal(http_status(got), 400, "upgrade to %s asking for %r: 400" % (path, protocols))
                await by.still_served("an upgrade to %s asking for %r" % (path, protocols))

        cases = [
            ("an upgrade over HTTP/1.0", dict(http="HTTP/1.0"), 400),
            ("a Sec-WebSocket-Key that is no base64", dict(key="not base64 at all!!!!!!="), 400),
            ("a Sec-WebSocket-Key of 15 bytes", dict(key=base64.b64encode(b"x" * 15).decode()), 400),
            ("a Sec-WebSocket-Key of 17 bytes", dict(key=base64.b64encode(b"x" * 17).decode()), 400),
            ("no Sec-WebSocket-Key", dict(key=None), 400),
            ("Sec-WebSocket-Version 8", dict(version="8"), 426),
            ("Sec-WebSocket-Version 14", dict(version="14"), 426),
            ("no Sec-WebSocket-Version", dict(version=None), 426),
        ]
        for what, kwargs, status in cases:
            got = answer(server, upgrade_request("/ws", **kwargs))
            c.equal(http_status(got), status, "%s: %d" % (what, status))
            if status == 426:
                c.check(b"\r\nsec-websocket-version: 13\r\n" in got.lower(),
                        "%s: the 426 names Sec-WebSocket-Version: 13" % what, got[:300])
            await by.still_served(what)
        # A refused upgrade behind a kept-alive request closes the connection:
        # the request smuggled after it is never answered.
        keep = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n" + upgrade_request("/nowhere") + \
            b"GET /status HTTP/1.1\r\nHost: x\r\n\r\n"
        got = raw_http(server.connect_host(), server.port, keep, timeout=5)
        c.check(b" 404 " in got and b'"connections"' not in got and got.count(b"HTTP/1.") == 2,
                "a refused upgrade after a kept-alive request closes; nothing after it is answered", got[:600])
        await by.still_served("a refused upgrade on a kept-alive connection")
        got = answer(server, upgrade_request("/ws"))
        c.equal(http_status(got), 101, "a well-formed upgrade still gets 101")
        await by.close()


if __name__ == "__main__":
    main(group)
