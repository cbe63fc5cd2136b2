#!/usr/bin/python3
"""Probes, channel names (issue 12): C0/C1 controls, DEL and bidirectional
controls (U+202E and kin) are refused with bad_request, so a channel list
or a log line cannot show a name other than the one subscribed."""

from kit import Bystander, Server, clean_env, close_quietly, connect, main, recv_json, request


async def group(c, binary, source):
    with Server(binary, env=clean_env()) as server:  # development mode: token = user name
        by = await Bystander(c, server).open()
        ws = await connect(server.url("/ws"))
        await recv_json(ws)
        await request(ws, {"type": "auth", "id": 0, "token": "alice"})
        for i, name in enumerate(("news\u202egro", "news\u0085x", "news\u009bx", "a\u2066b", "a\u200fb",
                                  "a\u061cb", "a\u007fb", "a\nb")):
            r = await request(ws, {"type": "subscribe", "id": i + 1, "channel": name})
            c.check(r.get("type") == "error" and r.get("code") == "bad_request",
                    "subscribe to %r: bad_request" % name, r)
            await by.still_served("subscribe to %r" % name)
        r = await request(ws, {"type": "subscribe", "id": 98, "channel": "a\u0000b"})
        c.check(r.get("code") == "bad_json", "a NUL in a name: bad_json, as for any \\u0000 in a message", r)
        await by.still_served("a NUL in a channel name")
        r = await request(ws, {"type": "subscribe", "id": 99, "channel": "news.\u00e9t\u00e9"})
        c.equal(r.get("type"), "subscribe.ok", "a name with ordinary non-ASCII letters is still fine")
        await close_quietly(ws)
        await by.close()


if __name__ == "__main__":
    main(group)
