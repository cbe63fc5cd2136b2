#!/usr/bin/python3
"""JWT checks of issue 12, end to end through the standard protocol.

    /usr/bin/python3 tests/python/test_jwt_checks.py <wsrelay> <source-dir>

With WSRELAY_JWT_SECRET set, every token below is validly signed, so only the
property under test can be the reason for the refusal:

  * a `crit` header (RFC 7515 4.1.11): the relay implements no extension, so
    any is `unauthorized` "invalid token: unsupported critical header 'x'";
    a crit that is not a non-empty array of strings is "malformed token";
  * `=` padding in the header, the payload or the signature: compact JWS
    has none, "malformed token";
  * a `channels` claim of any shape but an array of strings (object, string,
    number, boolean, null, arrays holding non-strings): "invalid token:
    'channels' must be an array of strings".

Each refusal is an `unauthorized` error echoing the id; the connection stays
open and unauthenticated. Prints one line per failed check and ends with
"N passed, M failed"; exit code 0 only if all pass.
"""

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
    Checker, Server, ServerError, clean_env, close_quietly, connect, recv_json, request,
    run_async_main, usage_args)

SECRET = "jwt-checks-secret-0123456789"


def b64url(raw, pad=False):
    text = base64.urlsafe_b64encode(raw).decode("ascii")
    return text if pad else text.rstrip("=")


def sign(header_b64, payload_b64):
    signing_input = ("%s.%s" % (header_b64, payload_b64)).encode("ascii")
    return "%s.%s" % (signing_input.decode("ascii"),
                      b64url(hmac.new(SECRET.encode(), signing_input, hashlib.sha256).digest()))


def enc(obj):
    return b64url(json.dumps(obj, separators=(",", ":")).encode())


def make_jwt(claims, header=None):
    return sign(enc(header or {"alg": "HS256", "typ": "JWT"}), enc(claims))


def padded_cases(exp):
    # {"alg":"HS256" } (16 bytes) and the payload end in partial
    # groups: their padded forms are what a careless encoder emits.
    header_raw = b'{"alg":"HS256" }'
    payload_raw = json.dumps({"sub": "padded", "exp": exp, "x": ""}, separators=(",", ":")).encode()
    if len(payload_raw) % 3 == 0:
        payload_raw = payload_raw[:-1] + b' }'
    assert len(header_raw) % 3 and len(payload_raw) % 3, "both parts need a partial group"
    h, hp = b64url(header_raw), b64url(header_raw, pad=True)
    p, pp = b64url(payload_raw), b64url(payload_raw, pad=True)
    good = sign(h, p)
    return good, [
        ("a padded header, signed as sent", sign(hp, p)),
        ("a padded payload, signed as sent", sign(h, pp)),
        ("a padded signature", good + "="),
        ("every part padded", sign(hp, pp) + "="),
    ]


async def expect_refused(c, ws, rid, token, reason, what):
    r = await request(ws, {"type": "auth", "id": rid, "token": token})
    ok = c.equal((r.get("type"), r.get("code"), r.get("id")), ("error", "unauthorized", rid),
                 "%s: unauthorized, id echoed" % what)
    return c.equal(r.get("message"), "invalid token: " + reason, "%s: message" % what) and ok


async def still_unauthenticated(c, ws, what):
    r = await request(ws, {"type": "subscribe", "id": "probe", "channel": "probe"})
    c.equal((r.get("code"), r.get("message")), ("unauthorized", "authenticate first"),
            "%s: the connection is open and still unauthenticated" % what)


async def main(c):
    binary, _ = usage_args()
    server = Server(binary, env=clean_env({"WSRELAY_JWT_SECRET": SECRET}))
    try:
        server.start()
    except ServerError as exc:
        c.check(False, "start wsrelay with WSRELAY_JWT_SECRET", str(exc))
        return
    ws = None
    try:
        ws = await connect(server.url("/ws"))
        await recv_json(ws)  # welcome
        exp = int(time.time()) + 3600
        claims = {"sub": "mallory", "exp": exp}

        # -- crit ---------------------------------------------------------------------
        for i, (header, reason) in enumerate([
                ({"alg": "HS256", "typ": "JWT", "crit": ["b64"], "b64": False},
                 "unsupported critical header 'b64'"),
                ({"alg": "HS256", "crit": ["x", "y"]}, "unsupported critical header 'x'"),
                ({"alg": "HS256", "crit": ["exp"], "exp": exp}, "unsupported critical header 'exp'"),
                ({"alg": "HS256", "crit": []}, "malformed token"),
                ({"alg": "HS256", "crit": "x"}, "malformed token"),
                ({"alg": "HS256", "crit": [1]}, "malformed token"),
                ({"alg": "HS256", "crit": {"x": True}}, "malformed token"),
                ({"alg": "HS256", "crit": None}, "malformed token")]):
            await expect_refused(c, ws, "crit-%d" % i, make_jwt(claims, header), reason,
                                 "crit %s" % json.dumps(header.get("crit")))
        await still_unauthenticated(c, ws, "after the crit tokens")

        # -- padding ------------------------------------------------------------------
        good, cases = padded_cases(exp)
        for i, (what, token) in enumerate(cases):
            await expect_refused(c, ws, "pad-%d" % i, token, "malformed token", what)
        await still_unauthenticated(c, ws, "after the padded tokens")
        r = await request(ws, {"type": "auth", "id": "pad-ok", "token": good})
        c.equal((r.get("type"), r.get("user")), ("auth.ok", "padded"), "the same token unpadded is accepted")

        # -- channels -----------------------------------------------------------------
        # A fresh connection: the previous one is now authenticated.
        await close_quietly(ws)
        ws = await connect(server.url("/ws"))
        await recv_json(ws)
        for i, channels in enumerate([{}, {"a": "news"}, {"1": "news"}, "news.*", 42, True, None,
                                      ["news", 1], [None], ["a", ["b"]], [{"x": "y"}]]):
            await expect_refused(c, ws, "ch-%d" % i, make_jwt({"sub": "eve", "exp": exp, "channels": channels}),
                                 "'channels' must be an array of strings", "channels %s" % json.dumps(channels))
        await still_unauthenticated(c, ws, "after the bad channels claims")
        r = await request(ws, {"type": "auth", "id": "ch-ok", "token": make_jwt(
            {"sub": "eve", "exp": exp, "channels": ["news.*"]})})
        c.equal((r.get("type"), r.get("user")), ("auth.ok", "eve"), "an array of strings is a grant")
        r = await request(ws, {"type": "subscribe", "id": "s1", "channel": "admin"})
        c.equal(r.get("code"), "forbidden", "and it limits the holder")
        c.check(server.alive(), "the server is still running")
    finally:
        await close_quietly(ws)
        rc = server.stop()
        c.check(rc == 0, "wsrelay exits 0 on SIGTERM", "exit code %r" % (rc,))


if __name__ == "__main__":
    sys.exit(run_async_main(main, Checker()))
