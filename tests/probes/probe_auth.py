#!/usr/bin/python3
"""Probes, identity (issue 12 items 4, 5 and the JWT rules): a token with a
repeated claim or header key is malformed (one token, one user); a re-auth
as another user leaves none of the first user's channels; tokens with an
unknown `crit`, `=` padding or a `channels` claim that is no array of
strings are refused; a session whose token expires is closed unless it
re-authenticated with a fresh token first."""

import asyncio
import time

from kit import (Bystander, SECRET, Server, b64url, clean_env, close_quietly, connect, expect_silence,
                       jwt, jwt_raw, main, recv_json, request, send_json, sign)

HS256 = '{"alg":"HS256","typ":"JWT"}'


async def client(server):
    ws = await connect(server.url("/ws"))
    await recv_json(ws)  # welcome
    return ws


async def refused_token(c, server, by, token, words, what):
    ws = await client(server)
    r = await request(ws, {"type": "auth", "id": 1, "token": token})
    c.check(r.get("type") == "error" and r.get("code") == "unauthorized" and words in r.get("message", ""),
            "%s: auth refused, unauthorized naming %r" % (what, words), r)
    await close_quietly(ws)
    await by.still_served(what)


async def group(c, binary, source):
    with Server(binary, env=clean_env({"WSRELAY_JWT_SECRET": SECRET})) as server:
        by = await Bystander(c, server).open()
        later = int(time.time()) + 600

        # One token, one user: a repeated key anywhere is malformed.
        await refused_token(c, server, by, jwt_raw(HS256, '{"sub":"ann","sub":"root","exp":%d}' % later),
                            "malformed", "a token with two 'sub' claims")
        await refused_token(c, server, by, jwt_raw('{"alg":"none","alg":"HS256"}', '{"sub":"ann"}'),
                            "malformed", "a token header with two 'alg'")
        # RFC 7515: an extension the relay does not understand is refused.
        await refused_token(c, server, by, jwt({"sub": "ann", "exp": later},
                                               {"alg": "HS256", "typ": "JWT", "crit": ["x-unknown"], "x-unknown": 1}),
                            "crit", "a token with crit naming an unknown extension")
        # Compact JWS has no padding, in any part.
        good = jwt({"sub": "ann", "exp": later})
        h, p, s = good.split(".")
        padded_payload = b64url(('{"sub":"ann","exp":%d}' % later).encode()) + "=="
        await refused_token(c, server, by, "%s.%s.%s" % (h, padded_payload, sign(h, padded_payload)),
                            "malformed", "a payload with '=' padding")
        await refused_token(c, server, by, "%s.%s.%s=" % (h, p, s), "malformed", "a signature with '=' padding")
        for shape in ({"a": 1}, "news.*", 7, None, ["news.*", 1]):
            await refused_token(c, server, by, jwt({"sub": "ann", "exp": later, "channels": shape}),
                                "'channels' must be an array of strings", "a channels claim %r" % (shape,))

        # Re-auth as bob leaves none of alice's channels.
        ws, pub = await client(server), await client(server)
        r = await request(ws, {"type": "auth", "id": 1, "token": jwt({"sub": "alice", "exp": later})})
        c.equal(r.get("user"), "alice", "alice authenticates")
        for i, channel in enumerate(("user:alice", "admin")):
            await request(ws, {"type": "subscribe", "id": 10 + i, "channel": channel})
        await request(pub, {"type": "auth", "id": 1, "token": jwt({"sub": "carol", "exp": later})})
        r = await request(ws, {"type": "auth", "id": 2,
                               "token": jwt({"sub": "bob", "exp": later, "channels": ["news.*"]})})
        c.equal(sorted(r.get("unsubscribed") or []), ["admin", "user:alice"],
                "re-auth as bob: auth.ok lists alice's channels as unsubscribed")
        for channel in ("user:alice", "admin"):
            r = await request(pub, {"type": "chat", "id": channel, "channel": channel, "data": "secret"})
            c.equal(r.get("type"), "chat.ok", "carol publishes to %s" % channel)
        c.check(await expect_silence(ws, 0.4) is None, "bob receives nothing from alice's channels")
        await close_quietly(ws)
        await close_quietly(pub)
        await by.still_served("re-auth as another user")

        # exp passes: closed by the keepalive sweep, unless refreshed by auth.
        soon = int(time.time()) + 2
        expiring, refreshed = await client(server), await client(server)
        for ws, user in ((expiring, "eve"), (refreshed, "fred")):
            r = await request(ws, {"type": "auth", "id": 1, "token": jwt({"sub": user, "exp": soon})})
            c.equal(r.get("type"), "auth.ok", "%s authenticates with a token expiring in 2 s" % user)
        r = await request(refreshed, {"type": "auth", "id": 2, "token": jwt({"sub": "fred", "exp": later})})
        c.equal(r.get("type"), "auth.ok", "fred re-authenticates with a fresh token")
        try:
            await asyncio.wait_for(expiring.wait_closed(), 5)
        except asyncio.TimeoutError:
            pass
        c.equal((expiring.close_code, expiring.close_reason), (4001, "token expired"),
                "eve's session is closed when her token expires")
        r = await request(refreshed, {"type": "heartbeat", "id": 3})
        c.equal(r.get("type"), "heartbeat", "fred's refreshed session outlives the first token")
        await close_quietly(refreshed)
        await by.still_served("a token expiring mid-session")
        await by.close()


if __name__ == "__main__":
    main(group)
