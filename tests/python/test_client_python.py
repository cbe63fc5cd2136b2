#!/usr/bin/python3
"""Live test of the Python client (examples/clients/python/wsrelay_client.py).

    /usr/bin/python3 tests/python/test_client_python.py <wsrelay> <source-dir>

Starts the relay on a free port (standard script, development-mode auth,
heartbeat.interval 1), then drives two clients: auth, subscribe, chat seen by
the other client, typing, error replies and timeouts of requests, heartbeats,
unsubscribe, a restart of the relay on the same port (SIGTERM, a request
queued while it is down, reconnect, re-auth, resubscribe), a frozen relay
(SIGSTOP: the heartbeat timeout triggers a reconnect) and close(). Then the
channel memory of the history channel hist1 (tests/clients/relay_control.py):
join/leave, presence, a numbered stream from a plain WebSocket publisher with
the client's socket cut in the middle (every message exactly once, in order),
replayed duplicates dropped, history(), and a restart (recovery_failed).
"""

import asyncio
import functools
import os
import re
import sys
import time

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "clients"))

from relay_control import Relay  # noqa: E402
from wsrelay_harness import Checker, run_async_main, usage_args  # noqa: E402


def wait_for(client, event, predicate=lambda *a: True, timeout=5.0):
    """A future with the args of the next `event` satisfying predicate."""
    loop = asyncio.get_running_loop()
    fut = loop.create_future()

    def listener(*args):
        if not fut.done() and predicate(*args):
            fut.set_result(args[0] if len(args) == 1 else args)

    off = client.on(event, listener)

    async def waiter():
        try:
            return await asyncio.wait_for(fut, timeout)
        except asyncio.TimeoutError:
            raise AssertionError("no %r event within %.1f s" % (event, timeout)) from None
        finally:
            off()

    return asyncio.ensure_future(waiter())


def collect(client, event):
    seen = []
    client.on(event, lambda *args: seen.append(args[0] if len(args) == 1 else args))
    return seen


async def failure(awaitable):
    """The exception raised by awaitable (None if it did not raise)."""
    try:
        await awaitable
    except Exception as exc:  # noqa: BLE001
        return exc
    return None


async def body(checker, relay, client_module):
    WsRelayClient = client_module.WsRelayClient
    WsRelayError = client_module.WsRelayError
    loop = asyncio.get_running_loop()
    token_calls = []

    async def alice_token():
        token_calls.append(time.monotonic())
        return "alice"

    opts = dict(request_timeout=3.0, connect_timeout=2.0, heartbeat_timeout=1.5,
                reconnect_delay=0.1, reconnect_delay_max=1.0)
    a = WsRelayClient(relay.url, token=alice_token, **opts)
    b = WsRelayClient(relay.url, token="bob", **opts)
    if os.environ.get("WSRELAY_TEST_DEBUG"):
        t00 = time.monotonic()
        for name, c in (("a", a), ("b", b)):
            c.on("state", lambda st, info, n=name: print("%.3f %s state %s %s"
                                                       % (time.monotonic() - t00, n, st, info)))
            c.on("close", lambda info, n=name: print("%.3f %s close %s" % (time.monotonic() - t00, n, info)))
    a_states = collect(a, "state")
    a_chats = collect(a, "chat")
    a_closes = collect(a, "close")
    a_errors = collect(a, "error")
    try:
        # connect + auth
        checker.equal(a.state, "closed", "state before connect")
        info = await a.connect()
        await b.connect()
        checker.equal(a.state, "open", "state after connect")
        checker.equal(info["user"], "alice", "auth.ok user")
        checker.equal(info["reconnected"], False, "first open is not a reconnect")
        checker.check(re.match(r"^[0-9a-f]{16}$", a.session or ""), "session id", a.session)
        checker.equal(a.heartbeat, 1, "welcome.heartbeat (relay config interval 1)")
        checker.equal([s[0] for s in a_states[:2]], ["connecting", "open"], "states on first connect")
        checker.equal(len(token_calls), 1, "token function called once")

        # subscribe
        sub = await a.subscribe("room1")
        checker.equal((sub["type"], sub["channel"]), ("subscribe.ok", "room1"), "subscribe reply")
        await b.subscribe("room1")
        checker.check("room1" in a.channels, "channel remembered")

        # chat seen by a second client (and by the sender)
        b_got = wait_for(b, "chat", lambda m: m["data"] == {"text": "hi"})
        ok = await a.chat("room1", {"text": "hi"})
        checker.equal(ok["type"], "chat.ok", "chat reply type")
        checker.check(isinstance(ok.get("seq"), int) and ok["seq"] >= 1, "chat.ok seq", ok)
        m = await b_got
        checker.equal((m["channel"], m["from"], m["data"], m["seq"]), ("room1", "alice", {"text": "hi"}, ok["seq"]),
                      "chat broadcast seen by bob")
        checker.check(isinstance(m.get("ts"), int), "chat broadcast ts", m)
        checker.check(any(c["data"] == {"text": "hi"} for c in a_chats), "sender sees its own broadcast")

        # typing: bob types, alice sees it, bob does not get his own
        b_typing = collect(b, "typing")
        a_typing = wait_for(a, "typing")
        checker.equal(await b.typing("room1", True), True, "typing sent")
        t = await a_typing
        checker.equal((t["channel"], t["from"], t["typing"]), ("room1", "bob", True), "typing broadcast")
        await asyncio.sleep(0.2)
        checker.equal(len(b_typing), 0, "typing not echoed to the sender")

        # an error reply raises (a custom type the standard script does not know)
        err = await failure(a.request({"type": "custom.echo", "payload": 1}))
        checker.check(isinstance(err, WsRelayError), "custom request raises WsRelayError", repr(err))
        checker.equal(getattr(err, "code", None), "unknown_type", "error code of the custom request")
        checker.check(err is not None and err.reply and "id" in err.reply, "error reply carries the id",
                      getattr(err, "reply", None))
        err = await failure(a.subscribe(""))
        checker.equal(getattr(err, "code", None), "bad_request", "subscribe('') refused")
        checker.check("" not in a.channels, "refused channel not remembered")

        # timeout: typing sent as a request gets no reply on success
        t0 = time.monotonic()
        err = await failure(a.request({"type": "typing", "channel": "room1", "typing": False}, timeout=0.3))
        took = time.monotonic() - t0
        checker.equal(getattr(err, "code", None), "timeout", "request without a reply times out")
        checker.check(0.25 <= took < 2, "timeout after about 0.3 s", took)

        # concurrent requests, each resolved by its own reply
        h1, h2, h3 = await asyncio.gather(a.ping(), a.chat("room1", "x"), a.ping())
        checker.check(h1["type"] == "heartbeat" and h3["type"] == "heartbeat" and h2["type"] == "chat.ok",
                      "concurrent requests matched by id", (h1, h2, h3))
        checker.check(h1["id"] != h3["id"], "distinct ids")

        # app-level heartbeat every welcome.heartbeat (1 s)
        hb = await wait_for(a, "heartbeat", timeout=3)
        checker.check(isinstance(hb["rtt"], float) and hb["rtt"] >= 0, "heartbeat rtt", hb)

        # unsubscribe: room2 joined then left must not come back after reconnect
        await a.subscribe("room2")
        unsub = await a.unsubscribe("room2")
        checker.equal(unsub["type"], "unsubscribe.ok", "unsubscribe reply")
        checker.check("room2" not in a.channels, "unsubscribed channel forgotten")

        # ---- reconnect: SIGTERM, a request queued meanwhile, a new relay on the same port
        old_session = a.session
        del a_states[:]
        a_reconnecting = wait_for(a, "state", lambda s, i: s == "reconnecting")
        b_reconnecting = wait_for(b, "state", lambda s, i: s == "reconnecting")
        await loop.run_in_executor(None, relay.down)
        await a_reconnecting
        await b_reconnecting
        checker.check(any(c["code"] == 1001 and c["was_open"] for c in a_closes),
                      "close 1001 (server shutting down) seen", a_closes)
        await asyncio.sleep(0.3)  # a few failed attempts against the closed port
        queued = asyncio.ensure_future(a.chat("room1", {"text": "queued"}, timeout=8))
        a_open = wait_for(a, "open", timeout=10)
        b_open = wait_for(b, "open", timeout=10)
        a_queued = wait_for(a, "chat", lambda m: m["data"] == {"text": "queued"}, timeout=10)
        await loop.run_in_executor(None, relay.up)
        reinfo = await a_open
        await b_open
        checker.equal(reinfo["reconnected"], True, "open after restart is a reconnect")
        checker.equal(reinfo["user"], "alice", "re-authenticated as alice")
        checker.check(a.session != old_session, "new session after restart")
        checker.check(len(token_calls) >= 2, "token function asked again on reconnect", len(token_calls))
        checker.equal(reinfo["channels"], ["room1"], "resubscribed channels")
        names = [s[0] for s in a_states]
        checker.check("reconnecting" in names and "connecting" in names and names[-1] == "open",
                      "states through the restart", names)
        queued_ok = await queued
        checker.equal(queued_ok["type"], "chat.ok", "queued chat sent after reconnect")
        await a_queued
        checker.check(True, "queued chat broadcast after resubscribe")

        # a chat on the old channel reaches alice; room2 (unsubscribed) does not
        a_after = wait_for(a, "chat", lambda m: m["data"] == "after restart")
        ok_after = await b.chat("room1", "after restart")
        after = await a_after
        checker.equal((after["from"], after["channel"]), ("bob", "room1"), "chat on the old channel after restart")
        checker.equal(ok_after["seq"], after["seq"], "seq of the new relay")
        room2_before = sum(1 for c in a_chats if c["channel"] == "room2")
        await b.chat("room2", "not for alice")
        await asyncio.sleep(0.3)
        checker.equal(sum(1 for c in a_chats if c["channel"] == "room2"), room2_before, "room2 not resubscribed")

        # ---- dead link: freeze the relay until both clients have noticed
        a_dead = wait_for(a, "close", lambda c: c["reason"] == "heartbeat timeout", timeout=8)
        b_dead = wait_for(b, "close", lambda c: c["reason"] == "heartbeat timeout", timeout=8)
        t0 = time.monotonic()
        relay.pause()
        try:
            dead = await a_dead
            detect = time.monotonic() - t0
            await b_dead
        finally:
            a_back = wait_for(a, "open", timeout=15)
            b_back = wait_for(b, "open", timeout=15)
            relay.resume()
        checker.equal(dead["code"], 4000, "heartbeat timeout close code")
        checker.check(detect < 5.5, "dead link detected within interval + heartbeat_timeout", detect)
        await a_back
        await b_back
        a_live = wait_for(a, "chat", lambda m: m["data"] == "after freeze")
        await b.chat("room1", "after freeze")
        await a_live
        checker.check(True, "chat after the heartbeat reconnect")

        await memory(checker, relay, client_module, b, opts)

        # ---- close: no more reconnects, requests refused
        await a.close()
        checker.equal(a.state, "closed", "closed after close()")
        await asyncio.sleep(0.4)
        checker.equal(a.state, "closed", "stays closed")
        err = await failure(a.chat("room1", "x"))
        checker.equal(getattr(err, "code", None), "closed", "request after close() raises 'closed'")
        checker.check(all(e.code != "bad_json" for e in a_errors), "no undecodable frames", a_errors)
    finally:
        await a.close()
        await b.close()


async def memory(checker, relay, client_module, b, opts):
    """Channel memory in the history channel hist1 (hist* keeps 1000
    publications, with presence and join/leave). The stream comes from a
    plain WebSocket publisher (relay.publish, in a thread)."""
    loop = asyncio.get_running_loop()

    def publish(first, last, **kw):
        return loop.run_in_executor(None, functools.partial(relay.publish, "hist1", first, last, **kw))

    c = client_module.WsRelayClient(relay.url, token="carol", **opts)
    hist = []
    c.on("chat", lambda m: hist.append(m) if m["channel"] == "hist1" else None)
    sub_oks = []
    c.on("message", lambda m: sub_oks.append(m)
         if m.get("type") == "subscribe.ok" and m.get("channel") == "hist1" else None)
    failures = collect(c, "recovery_failed")
    try:
        await c.connect()
        checker.equal(c.position("hist1"), None, "no position before subscribing")
        sub = await c.subscribe("hist1")
        epoch = sub.get("epoch")
        checker.check(isinstance(epoch, str) and re.match(r"^[0-9a-f]{12}$", epoch) and sub.get("seq") == 0,
                      "subscribe.ok of a history channel: epoch and seq", sub)
        checker.equal(c.position("hist1"), {"epoch": epoch, "seq": 0}, "position taken from subscribe.ok")
        checker.equal((await c.subscribe("room1")).get("epoch"), None, "a plain channel has no epoch")
        checker.equal(c.position("room1"), None, "no position in a plain channel")

        # join / leave, presence, presence_stats
        c_join = wait_for(c, "join", lambda m: m["user"] == "bob")
        await b.subscribe("hist1")
        join = await c_join
        checker.equal((join["channel"], join["user"], join["session"]), ("hist1", "bob", b.session), "join event")
        pres = await c.presence("hist1")
        checker.equal((pres["type"], sorted(x["user"] for x in pres["clients"])), ("presence.ok", ["bob", "carol"]),
                      "presence()")
        checker.check(any(x["session"] == c.session for x in pres["clients"]), "presence lists this session", pres)
        stats = await c.presence_stats("hist1")
        checker.equal((stats["type"], stats["clients"], stats["users"]), ("presence_stats.ok", 2, 2),
                      "presence_stats()")
        c_leave = wait_for(c, "leave", lambda m: m["user"] == "bob")
        await b.unsubscribe("hist1")
        leave = await c_leave
        checker.equal((leave["channel"], leave["session"]), ("hist1", b.session), "leave event")
        err = await failure(c.history("room1"))
        checker.equal(getattr(err, "code", None), "not_available", "history() of a plain channel")
        err = await failure(c.presence("room1"))
        checker.equal(getattr(err, "code", None), "not_available", "presence() of a plain channel")

        # a stream cut in the middle: 1..10, then 11..40 with the socket cut by
        # the relay right after 15 (the publisher goes on), then 41..50
        got10 = wait_for(c, "chat", lambda m: m["channel"] == "hist1" and m["data"]["n"] == 10)
        await publish(1, 10)
        await got10
        before_cut = []
        cut = wait_for(c, "close", lambda ci: before_cut.append(len(hist)) or ci["code"] == 1008)
        reopened = wait_for(c, "open", timeout=10)
        old_session = c.session
        await publish(11, 40, kick=c.session, kick_at=15)
        cut_info = await cut
        checker.check(cut_info["was_open"], "the cut closed an open connection (1008)", cut_info)
        reinfo = await reopened
        checker.equal(reinfo["reconnected"], True, "reconnected by itself after the cut")
        checker.check(c.session != old_session, "a new session after the cut")
        got50 = wait_for(c, "chat", lambda m: m["channel"] == "hist1" and m["data"]["n"] == 50, timeout=10)
        await publish(41, 50)
        await failure(got50)
        checker.equal([m["data"]["n"] for m in hist], list(range(1, 51)), "every numbered message exactly once, in order")
        checker.equal([m["seq"] for m in hist], list(range(1, 51)), "seqs 1..50")
        resub = sub_oks[-1]
        checker.check(len(sub_oks) == 2 and resub.get("recovered") is True and resub.get("epoch") == epoch
                      and resub.get("seq", 0) > before_cut[-1],
                      "resubscribed with since: recovered, the missed ones replayed", (sub_oks, before_cut))
        checker.equal(c.position("hist1"), {"epoch": epoch, "seq": 50}, "position after the stream")
        checker.equal(len(failures), 0, "no recovery_failed after the cut")

        # duplicates: a subscribe with an older since on the joined channel
        # makes the relay send 48..50 again; they are dropped, 51 is not
        dup = await c.request({"type": "subscribe", "channel": "hist1", "since": {"seq": 47, "epoch": epoch}})
        checker.equal((dup.get("recovered"), dup.get("seq")), (True, 50), "the relay replays 48..50 again")
        got51 = wait_for(c, "chat", lambda m: m["channel"] == "hist1" and m["data"]["n"] == 51)
        await publish(51, 51)
        await got51
        checker.equal([m["data"]["n"] for m in hist[46:]], [47, 48, 49, 50, 51], "replayed duplicates not delivered twice")
        checker.equal(c.position("hist1"), {"epoch": epoch, "seq": 51}, "position 51")

        # history()
        h = await c.history("hist1", 5)
        checker.equal((h["type"], h["epoch"], h["seq"], [m["data"]["n"] for m in h["messages"]]),
                      ("history.ok", epoch, 51, list(range(47, 52))), "history(channel, 5)")
        hs = await c.history("hist1", 100, {"seq": 48, "epoch": epoch})
        checker.equal((hs.get("recovered"), [m["seq"] for m in hs["messages"]]), (True, [49, 50, 51]),
                      "history(channel, 100, since)")

        # a restart: a new epoch, so the resubscribe cannot recover -> recovery_failed
        failed = wait_for(c, "recovery_failed", lambda ev: ev["channel"] == "hist1", timeout=10)
        back = wait_for(c, "open", timeout=10)
        b_back = wait_for(b, "open", timeout=10)
        await loop.run_in_executor(None, relay.down)
        await loop.run_in_executor(None, relay.up)
        ev = await failed
        checker.equal(ev["since"], {"seq": 51, "epoch": epoch}, "recovery_failed: since = the old position")
        checker.check(isinstance(ev["epoch"], str) and ev["epoch"] != epoch and ev["seq"] == 0,
                      "recovery_failed: the new epoch and seq", ev)
        await back
        await b_back
        checker.equal(len(failures), 1, "one recovery_failed (room1 keeps no history)")
        checker.equal(sub_oks[-1].get("recovered"), False, "subscribe.ok said recovered: false")
        checker.equal(c.position("hist1"), {"epoch": ev["epoch"], "seq": 0}, "position in the new epoch")
        got_new = wait_for(c, "chat", lambda m: m["channel"] == "hist1" and m["data"]["n"] == 1)
        await publish(1, 1)
        fresh = await got_new
        checker.equal(fresh["seq"], 1, "seq 1 of the new epoch is delivered (not taken for a duplicate)")
    finally:
        await c.close()


def main():
    binary, source_dir = usage_args()
    sys.path.insert(0, os.path.join(source_dir, "examples", "clients", "python"))
    import wsrelay_client  # noqa: E402

    checker = Checker()
    relay = Relay(binary)
    try:
        relay.up()
        print("relay on %s" % relay.url, flush=True)

        async def run(checker):
            await asyncio.wait_for(body(checker, relay, wsrelay_client), 55)

        return run_async_main(run, checker)
    finally:
        relay.close()


if __name__ == "__main__":
    sys.exit(main())
