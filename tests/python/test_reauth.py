#!/usr/bin/python3
"""Re-auth drops the old identity's subscriptions (issue 12, standard protocol).

    /usr/bin/python3 tests/python/test_reauth.py <wsrelay> <source-dir>

An `auth` as bob on a connection that authenticated as alice must leave no
subscription bob may not read (user:alice, channels outside his JWT's
"channels" claim), keep the ones he may, and list the dropped ones in
auth.ok "unsubscribed". Checked with HS256 tokens (WSRELAY_JWT_SECRET set)
and in development mode (token = user name). Prints one line per failed
check and ends with "N passed, M failed"; exit code 0 only if all pass.
"""

import asyncio
import base64
import hashlib
import hmac
import json
import os
import sys
import time

sys.dont_write_bytecode = True  # keep tests/python free of __pycache__
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from wsrelay_harness import (  # noqa: E402
    Checker, Server, ServerError, clean_env, close_quietly, connect, expect_silence, recv_json,
    recv_until, request, run_async_main, send_json, usage_args)

SILENCE = 0.4


def b64url(raw):
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def make_jwt(claims, secret):
    h = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    p = b64url(json.dumps(claims, separators=(",", ":")).encode())
    sig = hmac.new(secret.encode(), ("%s.%s" % (h, p)).encode("ascii"), hashlib.sha256).digest()
    return "%s.%s.%s" % (h, p, b64url(sig))


async def client(server):
    ws = await connect(server.url("/ws"))
    await recv_json(ws)  # welcome
    return ws


async def publish(c, pub, channel, data, what):
    """One chat from pub to channel; waits for its chat.ok."""
    rid = "pub-%s" % data
    await send_json(pub, {"type": "chat", "id": rid, "channel": channel, "data": data})
    ok, _ = await recv_until(pub, lambda m: m.get("id") == rid)
    c.equal(ok.get("type"), "chat.ok", "%s: publish to %s" % (what, channel))


async def scenario(c, server, alice_token, bob_token, alice_channels, kept, dropped, what):
    """Subscribes as alice to alice_channels, re-auths as bob, then checks that
    only `kept` still reaches the connection and auth.ok lists `dropped`."""
    ws = pub = None
    try:
        ws = await client(server)
        pub = await client(server)
        r = await request(ws, {"type": "auth", "id": "a1", "token": alice_token})
        c.equal((r.get("type"), r.get("user")), ("auth.ok", "alice"), "%s: auth as alice" % what)
        c.check("unsubscribed" not in r, "%s: a first auth carries no 'unsubscribed'" % what, r)
        for i, channel in enumerate(alice_channels):
            r = await request(ws, {"type": "subscribe", "id": "s%d" % i, "channel": channel})
            c.equal(r.get("type"), "subscribe.ok", "%s: alice subscribes to %s" % (what, channel))
        r = await request(pub, {"type": "auth", "id": "p1", "token": "publisher" if bob_token == "bob"
                                else make_jwt({"sub": "publisher", "exp": int(time.time()) + 60}, SECRET)})
        c.equal(r.get("type"), "auth.ok", "%s: publisher authenticates" % what)

        r = await request(ws, {"type": "auth", "id": "a2", "token": bob_token})
        c.equal((r.get("type"), r.get("id"), r.get("user")), ("auth.ok", "a2", "bob"), "%s: re-auth as bob" % what)
        c.equal(sorted(r.get("unsubscribed") or []), sorted(dropped),
                "%s: auth.ok 'unsubscribed' lists the channels bob may not read" % what)
        c.check(isinstance(r.get("unsubscribed"), list), "%s: 'unsubscribed' is a JSON array" % what, r)

        # The dropped channels first, the kept ones last: with per-connection
        # order, the first frame bob gets must be a kept channel's chat.
        for i, channel in enumerate(dropped):
            await publish(c, pub, channel, "d%d" % i, what)
        for i, channel in enumerate(kept):
            await publish(c, pub, channel, "k%d" % i, what)
            msg = await recv_json(ws)
            c.equal((msg.get("type"), msg.get("channel")), ("chat", channel),
                    "%s: bob still receives %s (and nothing from alice's channels before it)" % (what, channel))
        extra = await expect_silence(ws, SILENCE)
        c.check(extra is None, "%s: bob receives nothing from alice's dropped channels" % what, extra)

        # Re-auth as the same identity drops nothing and says so by omission.
        r = await request(ws, {"type": "auth", "id": "a3", "token": bob_token})
        c.check(r.get("type") == "auth.ok" and "unsubscribed" not in r,
                "%s: re-auth as the same bob drops nothing, no 'unsubscribed'" % what, r)
    finally:
        for s in (ws, pub):
            if s is not None:
                await close_quietly(s)


SECRET = "reauth-secret-0123456789"


async def main(c):
    binary, _ = usage_args()

    server = Server(binary, env=clean_env({"WSRELAY_JWT_SECRET": SECRET}))
    try:
        server.start()
    except ServerError as exc:
        c.check(False, "start wsrelay with WSRELAY_JWT_SECRET", str(exc))
        return
    try:
        now = int(time.time())
        alice = make_jwt({"sub": "alice", "exp": now + 60}, SECRET)
        bob = make_jwt({"sub": "bob", "exp": now + 60, "channels": ["news.*"]}, SECRET)
        await scenario(c, server, alice, bob, ["user:alice", "admin", "news.sport"],
                       kept=["news.sport"], dropped=["user:alice", "admin"], what="jwt")
    finally:
        rc = await asyncio.to_thread(server.stop)
        c.check(rc == 0, "wsrelay (JWT) exits 0 on SIGTERM", "exit code %r" % (rc,))

    dev = Server(binary, env=clean_env())
    try:
        dev.start()
    except ServerError as exc:
        c.check(False, "start wsrelay (development mode)", str(exc))
        return
    try:
        await scenario(c, dev, "alice", "bob", ["user:alice", "lobby"],
                       kept=["lobby"], dropped=["user:alice"], what="dev")
    finally:
        rc = await asyncio.to_thread(dev.stop)
        c.check(rc == 0, "wsrelay (development mode) exits 0 on SIGTERM", "exit code %r" % (rc,))


if __name__ == "__main__":
    sys.exit(run_async_main(main, Checker()))
