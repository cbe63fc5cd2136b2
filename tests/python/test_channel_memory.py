#!/usr/bin/python3
"""Channel memory end to end (issue 14): history, recovery with `since`,
presence, join/leave, their errors, /status, /metrics, /admin/broadcast and
the history memory bound, through the standard protocol.

    /usr/bin/python3 tests/python/test_channel_memory.py <wsrelay> <source-dir>

The real server on an ephemeral port with a temporary config that has
`channel_options`; real WebSocket clients (python3-websockets). Sections:

   1. drop and recover: 10 chats, a subscriber drops, 5 more, it comes back
      with since → recovered:true, exactly seq 11..15 (the bytes the others
      got), then live ones; the same with chats racing the subscribe
   2. publications kept with no subscriber; seq survives the last one leaving
   3. a restart → recovered:false, a new epoch, no replay
   4. recovered:false: history too short, seq ahead, history_ttl, epoch differs
   5. history requests: limit, cap, since, default
   6. presence, presence_stats, join/leave with 3 clients; typing ephemeral
   7. every error: not_available, malformed since/limit, unauthorized, forbidden (JWT)
   8. plain channels unchanged
   9. /status and /metrics counters
  10. POST /admin/broadcast into a history channel
  11. limits.history_memory_mb: streams dropped, recovery says false, still serving;
      a subscribed channel keeps its position (seq goes on), only its history goes
  12. history_ttl with live subscribers: the seq goes on in the same epoch,
      recovery from before the expired publications says false; with no
      subscriber left the ttl still starts the stream afresh

Prints one line per failed check and ends with "N passed, M failed"; exit
code 0 only if all pass.
"""

import asyncio
import json
import os
import re
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # keep tests/python free of __pycache__
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from wsrelay_harness import (  # noqa: E402
    make_hs256_jwt, DEFAULT_TIMEOUT, Checker, Server, ServerError, clean_env, close_quietly, connect, expect_silence,
    http_get, recv_json, recv_text, run_async_main, send_json, usage_args)

SILENCE = 0.25
ADMIN_TOKEN = "memory-admin-token-0123456789"
SECRET = "channel-memory-secret-0123456789"
EPOCH_RE = re.compile(r"^[0-9a-f]{12}$")

CHANNEL_OPTIONS = [
    {"match": "room*", "history_size": 100, "history_ttl": 300, "presence": True, "join_leave": True},
    {"match": "short*", "history_size": 3},
    {"match": "ttl*", "history_size": 10, "history_ttl": 1},
    {"match": "cap*", "history_size": 5},
    {"match": "hist*", "history_size": 20},
    {"match": "pres*", "presence": True},
    {"match": "big*", "history_size": 100},
]


def write_config(folder, extra=None, name="config.json"):
    body = {"listen": {"port": 0}, "endpoints": [{"path": "/ws"}], "channel_options": CHANNEL_OPTIONS}
    body.update(extra or {})
    path = os.path.join(folder, name)
    with open(path, "w") as f:
        json.dump(body, f)
    return path


def make_jwt(claims, secret=SECRET):
    return make_hs256_jwt(claims, secret)


_ids = [0]


def next_id(prefix="r"):
    _ids[0] += 1
    return "%s%d" % (prefix, _ids[0])


class Client:
    """One WebSocket connection speaking the standard protocol. Frames read
    past while waiting for a reply are kept and read first by the next recv,
    so a broadcast that overtakes its chat.ok is not lost."""

    def __init__(self, ws, session):
        self.ws = ws
        self.session = session
        self.pending = []  # raw texts

    async def recv_raw(self, timeout=DEFAULT_TIMEOUT):
        if self.pending:
            return self.pending.pop(0)
        return await recv_text(self.ws, timeout)

    async def recv(self, timeout=DEFAULT_TIMEOUT):
        return json.loads(await self.recv_raw(timeout))

    async def frames(self, n, timeout=DEFAULT_TIMEOUT):
        """The next n frames, raw text."""
        return [await self.recv_raw(timeout) for _ in range(n)]

    async def chats(self, n, timeout=DEFAULT_TIMEOUT):
        """The next n chat frames as (raw, obj), skipping join/leave/typing."""
        out = []
        deadline = time.monotonic() + timeout
        while len(out) < n:
            raw = await self.recv_raw(max(0.05, deadline - time.monotonic()))
            obj = json.loads(raw)
            if obj.get("type") == "chat":
                out.append((raw, obj))
        return out

    async def until(self, predicate, timeout=DEFAULT_TIMEOUT):
        """Reads until predicate(msg); returns (msg, skipped)."""
        skipped = []
        deadline = time.monotonic() + timeout
        while True:
            msg = await self.recv(max(0.05, deadline - time.monotonic()))
            if predicate(msg):
                return msg, skipped
            skipped.append(msg)

    async def drain(self, seconds=None):
        """Every frame (raw) that arrives until `seconds` pass without one."""
        out = list(self.pending)
        self.pending = []
        while True:
            try:
                out.append(await recv_text(self.ws, SILENCE if seconds is None else seconds))
            except asyncio.TimeoutError:
                return out

    async def silence(self, seconds=None):
        """None if nothing arrives (or is pending) within `seconds`, else the frame."""
        if self.pending:
            return json.loads(self.pending.pop(0))
        return await expect_silence(self.ws, SILENCE if seconds is None else seconds)

    async def call(self, obj, timeout=DEFAULT_TIMEOUT):
        """Sends obj (given an id) and returns (its reply, the frames that came
        before it); those frames stay pending for the next reads."""
        obj = dict(obj)
        obj.setdefault("id", next_id())
        await send_json(self.ws, obj)
        skipped = []
        deadline = time.monotonic() + timeout
        while True:
            raw = await recv_text(self.ws, max(0.05, deadline - time.monotonic()))
            msg = json.loads(raw)
            if isinstance(msg, dict) and msg.get("id") == obj["id"]:
                return msg, skipped
            skipped.append(msg)
            self.pending.append(raw)

    async def reply(self, obj):
        return (await self.call(obj))[0]

    async def chat(self, channel, data):
        """A chat; returns its chat.ok (or the error)."""
        return await self.reply({"type": "chat", "channel": channel, "data": data})

    async def close(self):
        await close_quietly(self.ws)


async def open_client(c, server, token=None, what="", user=None):
    """A connection past its welcome; with a token, authenticated (the user
    is the token in development mode, else `user`)."""
    ws = await connect(server.url("/ws"))
    welcome = await recv_json(ws)
    cl = Client(ws, welcome.get("session"))
    if token is not None:
        user = user or token
        r = await cl.reply({"type": "auth", "token": token})
        c.equal((r.get("type"), r.get("user")), ("auth.ok", user), "%s: auth as %s" % (what, user))
    return cl


def status_of(server):
    status, _, body = http_get(server.connect_host(), server.port, "/status")
    return json.loads(body) if status == 200 else {}


def metrics_of(server):
    _, _, body = http_get(server.connect_host(), server.port, "/metrics")
    values = {}
    for line in body.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        name, _, value = line.rpartition(" ")
        try:
            values[name] = float(value)
        except ValueError:
            pass
    return values


# ---- 1. drop and recover -----------------------------------------------------------


async def section_recover(c, server):
    what = "1 recover"
    ch = "room1"
    witness = await open_client(c, server, "witness", what)
    sub = await open_client(c, server, "sub", what)
    pub = await open_client(c, server, "pub", what)
    try:
        r = await witness.reply({"type": "subscribe", "channel": ch})
        c.equal((r.get("type"), r.get("channel"), r.get("seq")), ("subscribe.ok", ch, 0),
                "%s: a fresh history channel answers subscribe.ok with seq 0" % what)
        c.check(EPOCH_RE.match(str(r.get("epoch"))), "%s: subscribe.ok carries a 12-hex epoch" % what, r)
        c.check("recovered" not in r, "%s: subscribe without since has no 'recovered'" % what, r)
        epoch = r.get("epoch")
        r = await sub.reply({"type": "subscribe", "channel": ch})
        c.equal((r.get("type"), r.get("epoch"), r.get("seq")), ("subscribe.ok", epoch, 0),
                "%s: a second subscriber sees the same epoch" % what)

        seqs = []
        for i in range(1, 11):
            ok = await pub.chat(ch, {"n": i})
            seqs.append(ok.get("seq"))
        c.equal(seqs, list(range(1, 11)), "%s: chat.ok seq 1..10" % what)
        got = [json.loads(t) for t in await sub.frames(10)]
        c.equal([(m.get("type"), m.get("seq"), (m.get("data") or {}).get("n")) for m in got],
                [("chat", i, i) for i in range(1, 11)], "%s: the subscriber gets chats seq 1..10 in order" % what)
        c.check(all(list(m.keys())[-1] == "seq" for m in got), "%s: seq is the last member of each broadcast" % what,
                got[:1])
        last_seen = got[-1].get("seq")
        wchats = await witness.chats(10)
        c.equal([m.get("seq") for _, m in wchats], list(range(1, 11)), "%s: the witness gets seq 1..10" % what)

        await sub.close()
        leave, _ = await witness.until(lambda m: m.get("type") == "leave")
        c.equal(leave, {"type": "leave", "channel": ch, "user": "sub", "session": sub.session},
                "%s: the witness is told the dropped subscriber left" % what)

        for i in range(11, 16):
            ok = await pub.chat(ch, {"n": i})
            c.equal(ok.get("seq"), i, "%s: chat %d while the subscriber is away has seq %d" % (what, i, i))
        missed = await witness.chats(5)
        missed_raw = [raw for raw, _ in missed]
        c.equal([m.get("seq") for _, m in missed], list(range(11, 16)), "%s: the witness gets seq 11..15" % what)

        sub = await open_client(c, server, "sub", what + " (reconnected)")
        r = await sub.reply({"type": "subscribe", "channel": ch, "since": {"seq": last_seen, "epoch": epoch}})
        c.equal((r.get("type"), r.get("channel"), r.get("recovered"), r.get("epoch"), r.get("seq")),
                ("subscribe.ok", ch, True, epoch, 15),
                "%s: subscribe with since {seq 10, epoch} → recovered:true, seq 15" % what)
        replay = await sub.drain()
        c.equal([json.loads(t).get("seq") for t in replay], list(range(11, 16)),
                "%s: right after subscribe.ok come exactly seq 11..15 in order, nothing more" % what)
        c.equal(replay, missed_raw, "%s: the replayed frames are the same bytes the witness got" % what)

        ok = await pub.chat(ch, {"n": 16})
        c.equal(ok.get("seq"), 16, "%s: the live chat has seq 16" % what)
        live = json.loads(await sub.recv_raw())
        c.equal((live.get("type"), live.get("seq"), live.get("data")), ("chat", 16, {"n": 16}),
                "%s: the live chat arrives after the replay, seq 16 (no gap)" % what)
        extra = await sub.silence()
        c.check(extra is None, "%s: no duplicate after the live chat" % what, extra)

        # The same with chats racing the subscribe: whatever order the relay
        # sees them in, the recovering client gets every seq once, in order.
        racer = await open_client(c, server, "racer", what + " (race)")
        r = await racer.reply({"type": "subscribe", "channel": ch})
        base = r.get("seq")
        c.equal(base, 16, "%s: a new subscriber sees seq 16" % what)
        await racer.close()
        racer = await open_client(c, server, "racer", what + " (race, reconnected)")
        ids = []
        for i in range(10):
            ids.append(next_id("race"))
            await send_json(pub.ws, {"type": "chat", "id": ids[-1], "channel": ch, "data": {"race": i}})
        sub_id = next_id("racesub")
        await send_json(racer.ws, {"type": "subscribe", "id": sub_id, "channel": ch,
                                   "since": {"seq": base, "epoch": epoch}})
        for i in range(10, 20):
            ids.append(next_id("race"))
            await send_json(pub.ws, {"type": "chat", "id": ids[-1], "channel": ch, "data": {"race": i}})
        oks = []
        while len(oks) < 20:
            m = await pub.recv()
            if m.get("id") in ids:
                oks.append(m.get("seq"))
        c.equal(oks, list(range(base + 1, base + 21)), "%s: the 20 racing chats get seq 17..36" % what)
        first = await racer.recv()
        c.equal((first.get("type"), first.get("id"), first.get("recovered")), ("subscribe.ok", sub_id, True),
                "%s: subscribe.ok (recovered) comes before any broadcast of the channel" % what)
        seen = []
        while not seen or seen[-1] < base + 20:
            m = await racer.recv()
            if m.get("type") != "chat":
                c.check(False, "%s: only chats after subscribe.ok" % what, m)
                continue
            seen.append(m.get("seq"))
        c.equal(seen, list(range(base + 1, base + 21)),
                "%s: replay + live = every seq 17..36 exactly once, in order" % what)
        extra = await racer.silence()
        c.check(extra is None, "%s: nothing after seq 36" % what, extra)
        await racer.close()
    finally:
        for cl in (witness, sub, pub):
            await cl.close()


# ---- 2. kept with no subscriber; seq carries on -------------------------------------------


async def section_no_subscriber(c, server):
    what = "2 no subscriber"
    ch = "roomEmpty"
    pub = await open_client(c, server, "pub2", what)
    reader = await open_client(c, server, "reader2", what)
    try:
        seqs = [(await pub.chat(ch, "m%d" % i)).get("seq") for i in range(1, 4)]
        c.equal(seqs, [1, 2, 3], "%s: chats to a channel nobody is subscribed to get seq 1..3" % what)
        h = await reader.reply({"type": "history", "channel": ch})
        epoch = h.get("epoch")
        c.equal((h.get("type"), h.get("seq"), [m.get("data") for m in h.get("messages", [])]),
                ("history.ok", 3, ["m1", "m2", "m3"]), "%s: history keeps them" % what)
        r = await reader.reply({"type": "subscribe", "channel": ch, "since": {"seq": 0, "epoch": epoch}})
        c.equal((r.get("type"), r.get("recovered"), r.get("epoch"), r.get("seq")), ("subscribe.ok", True, epoch, 3),
                "%s: subscribe since {seq 0, epoch} → recovered:true" % what)
        got = [json.loads(t) for t in await reader.drain()]
        c.equal([(m.get("seq"), m.get("data"), m.get("from")) for m in got],
                [(1, "m1", "pub2"), (2, "m2", "pub2"), (3, "m3", "pub2")],
                "%s: the subscriber then gets the three kept publications, nothing more" % what)

        # The last subscriber leaves (unsubscribe): seq carries on.
        r = await reader.reply({"type": "unsubscribe", "channel": ch})
        c.equal(r.get("type"), "unsubscribe.ok", "%s: unsubscribe" % what)
        c.equal((await pub.chat(ch, "m4")).get("seq"), 4,
                "%s: after the last subscriber unsubscribed seq is 4, not 1" % what)
        # The last subscriber leaves (disconnect): seq carries on.
        gone = await open_client(c, server, "gone2", what)
        r = await gone.reply({"type": "subscribe", "channel": ch})
        c.equal((r.get("epoch"), r.get("seq")), (epoch, 4), "%s: a new subscriber sees seq 4, same epoch" % what)
        await gone.close()
        # Its disconnect is seen when a presence query no longer lists it.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            p = await reader.reply({"type": "presence", "channel": ch})
            if not p.get("clients"):
                break
            await asyncio.sleep(0.02)
        c.equal(p.get("clients"), [], "%s: the disconnected subscriber leaves presence" % what)
        c.equal((await pub.chat(ch, "m5")).get("seq"), 5,
                "%s: after the last subscriber disconnected seq is 5, not 1" % what)
        r = await reader.reply({"type": "subscribe", "channel": ch})
        c.equal((r.get("epoch"), r.get("seq")), (epoch, 5), "%s: subscribe.ok seq 5 in the same epoch" % what)
    finally:
        await pub.close()
        await reader.close()


# ---- 3. restart --------------------------------------------------------------------------


async def section_restart(c, binary, folder):
    what = "3 restart"
    cfg = write_config(folder)
    ch = "roomRestart"
    first = Server(binary, ["--config", cfg], env=clean_env())
    first.start()
    try:
        cl = await open_client(c, first, "ann", what)
        r = await cl.reply({"type": "subscribe", "channel": ch})
        old_epoch = r.get("epoch")
        for i in range(3):
            await cl.chat(ch, i)
        got = [json.loads(t) for t in await cl.frames(3)]
        c.equal([m.get("seq") for m in got], [1, 2, 3], "%s: seq 1..3 before the restart" % what)
        await cl.close()
    finally:
        rc = await asyncio.to_thread(first.stop)
    c.equal(rc, 0, "%s: the first server exits 0 on SIGTERM" % what)

    second = Server(binary, ["--config", cfg], env=clean_env())
    second.start()
    try:
        cl = await open_client(c, second, "ann", what + " (after)")
        r = await cl.reply({"type": "subscribe", "channel": ch, "since": {"seq": 3, "epoch": old_epoch}})
        c.equal((r.get("type"), r.get("recovered"), r.get("seq")), ("subscribe.ok", False, 0),
                "%s: subscribe with the old since → recovered:false, seq 0" % what)
        c.check(EPOCH_RE.match(str(r.get("epoch"))) and r.get("epoch") != old_epoch,
                "%s: a different epoch after the restart" % what, (old_epoch, r.get("epoch")))
        extra = await cl.silence()
        c.check(extra is None, "%s: no replay" % what, extra)
        ok = await cl.chat(ch, "new")
        c.equal(ok.get("seq"), 1, "%s: the stream starts afresh at seq 1" % what)
        m = await cl.recv()
        c.equal((m.get("type"), m.get("seq")), ("chat", 1), "%s: still subscribed after recovered:false" % what)
        await cl.close()
    finally:
        rc = await asyncio.to_thread(second.stop)
    c.equal(rc, 0, "%s: the second server exits 0 on SIGTERM" % what)


# ---- 4. recovered:false -----------------------------------------------------------------


async def expect_not_recovered(c, cl, ch, since, what, epoch=None, seq=None):
    r = await cl.reply({"type": "subscribe", "channel": ch, "since": since})
    c.equal((r.get("type"), r.get("recovered")), ("subscribe.ok", False), "%s: recovered:false" % what)
    if epoch is not None:
        c.equal(r.get("epoch"), epoch, "%s: subscribe.ok gives the current epoch" % what)
    if seq is not None:
        c.equal(r.get("seq"), seq, "%s: subscribe.ok gives the latest seq" % what)
    extra = await cl.silence()
    c.check(extra is None, "%s: no replay" % what, extra)
    await cl.reply({"type": "unsubscribe", "channel": ch})
    return r


async def section_not_recovered(c, server, ttl_started):
    what = "4 not recovered"
    pub = await open_client(c, server, "pub4", what)
    cl = await open_client(c, server, "cl4", what)
    try:
        ch = "short1"
        for i in range(1, 11):
            await pub.chat(ch, i)
        h = await cl.reply({"type": "history", "channel": ch})
        epoch = h.get("epoch")
        c.equal([m.get("seq") for m in h.get("messages", [])], [8, 9, 10], "%s: history_size 3 keeps seq 8..10" % what)
        await expect_not_recovered(c, cl, ch, {"seq": 2, "epoch": epoch}, "%s: since seq 2 with only 8..10 kept" % what,
                                   epoch, 10)
        await expect_not_recovered(c, cl, ch, {"seq": 6, "epoch": epoch}, "%s: since seq 6 (7 is gone)" % what)
        r = await cl.reply({"type": "subscribe", "channel": ch, "since": {"seq": 7, "epoch": epoch}})
        c.equal(r.get("recovered"), True, "%s: since seq 7 (8..10 kept) → recovered:true" % what)
        got = [json.loads(t).get("seq") for t in await cl.drain()]
        c.equal(got, [8, 9, 10], "%s: since seq 7 replays 8..10, nothing more" % what)
        await cl.reply({"type": "unsubscribe", "channel": ch})
        r = await cl.reply({"type": "subscribe", "channel": ch, "since": {"seq": 10, "epoch": epoch}})
        c.equal(r.get("recovered"), True, "%s: since the latest seq → recovered:true, nothing to replay" % what)
        extra = await cl.silence()
        c.check(extra is None, "%s: since the latest seq replays nothing" % what, extra)
        await cl.reply({"type": "unsubscribe", "channel": ch})

        await expect_not_recovered(c, cl, ch, {"seq": 11, "epoch": epoch}, "%s: since seq 11, ahead of 10" % what,
                                   epoch, 10)
        await expect_not_recovered(c, cl, ch, {"seq": 1000000, "epoch": epoch}, "%s: since seq far ahead" % what)
        other = "000000000000" if epoch != "000000000000" else "111111111111"
        await expect_not_recovered(c, cl, ch, {"seq": 9, "epoch": other}, "%s: epoch differs" % what, epoch, 10)
        await expect_not_recovered(c, cl, ch, {"seq": 9, "epoch": ""}, "%s: empty epoch" % what)

        # history_ttl 1 s: published at ttl_started (the start of this server's
        # scenarios); by now (and at least 2.5 s later) the stream has expired.
        ch, ttl_epoch = "ttl1", ttl_started["epoch"]
        left = ttl_started["at"] + 2.5 - time.monotonic()
        if left > 0:
            await asyncio.sleep(left)  # the expiry itself is what is waited for, nothing else
        r = await expect_not_recovered(c, cl, ch, {"seq": 2, "epoch": ttl_epoch},
                                       "%s: history_ttl 1 s, 2.5 s later" % what, seq=0)
        c.check(EPOCH_RE.match(str(r.get("epoch"))) and r.get("epoch") != ttl_epoch,
                "%s: the expired stream has a new epoch" % what, (ttl_epoch, r.get("epoch")))
        h = await cl.reply({"type": "history", "channel": ch})
        c.equal((h.get("seq"), h.get("messages")), (0, []), "%s: the expired stream's history is empty" % what)
        c.equal((await pub.chat(ch, "again")).get("seq"), 1, "%s: the expired stream restarts at seq 1" % what)
    finally:
        await pub.close()
        await cl.close()


async def ttl_start(c, server):
    """Publishes 2 chats to ttl1 and records its epoch and when."""
    pub = await open_client(c, server, "pubttl", "4 ttl")
    try:
        for i in range(2):
            await pub.chat("ttl1", i)
        h = await pub.reply({"type": "history", "channel": "ttl1"})
        c.equal((h.get("seq"), len(h.get("messages", []))), (2, 2), "4 ttl: two publications kept at first")
        r = await pub.reply({"type": "history", "channel": "ttl1", "since": {"seq": 0, "epoch": h.get("epoch")}})
        c.equal(r.get("recovered"), True, "4 ttl: within the ttl the stream is still recoverable")
        return {"epoch": h.get("epoch"), "at": time.monotonic()}
    finally:
        await pub.close()


# ---- 5. history requests ----------------------------------------------------------------


async def section_history(c, server):
    what = "5 history"
    ch = "cap1"
    pub = await open_client(c, server, "pub5", what)
    sub = await open_client(c, server, "sub5", what)
    try:
        r = await sub.reply({"type": "history", "channel": "capFresh"})
        c.equal((r.get("type"), r.get("channel"), r.get("seq"), r.get("messages")), ("history.ok", "capFresh", 0, []),
                "%s: history of a channel never published to: seq 0, no messages" % what)
        c.check(EPOCH_RE.match(str(r.get("epoch"))), "%s: it still has an epoch" % what, r)
        c.check("recovered" not in r, "%s: no 'recovered' without since" % what, r)

        s = await sub.reply({"type": "subscribe", "channel": ch})
        epoch = s.get("epoch")
        for i in range(1, 9):
            await pub.chat(ch, {"i": i})
        sent = [json.loads(t) for t in await sub.frames(8)]
        c.equal([m.get("seq") for m in sent], list(range(1, 9)), "%s: the subscriber got seq 1..8" % what)

        async def hist(extra, label, expected, recovered=None):
            rid = next_id("h")
            msg = {"type": "history", "id": rid, "channel": ch}
            msg.update(extra)
            r = await sub.reply(msg)
            c.equal((r.get("type"), r.get("id"), r.get("channel"), r.get("epoch"), r.get("seq")),
                    ("history.ok", rid, ch, epoch, 8), "%s: %s: history.ok with the epoch and seq 8" % (what, label))
            c.equal(r.get("messages"), expected, "%s: %s: the broadcast objects, oldest first" % (what, label))
            if recovered is None:
                c.check("recovered" not in r, "%s: %s: no 'recovered'" % (what, label), r)
            else:
                c.equal(r.get("recovered"), recovered, "%s: %s: recovered" % (what, label))

        await hist({}, "default (no limit)", sent[3:8])
        await hist({"limit": 3}, "limit 3", sent[5:8])
        await hist({"limit": 100}, "limit 100 capped by history_size 5", sent[3:8])
        await hist({"limit": 0}, "limit 0", [])
        await hist({"since": {"seq": 5, "epoch": epoch}}, "since seq 5", sent[5:8], True)
        await hist({"since": {"seq": 3, "epoch": epoch}}, "since seq 3 (4 is the oldest kept)", sent[3:8], True)
        await hist({"since": {"seq": 5, "epoch": epoch}, "limit": 2}, "since seq 5, limit 2", sent[5:7], True)
        await hist({"since": {"seq": 8, "epoch": epoch}}, "since the latest", [], True)
        await hist({"since": {"seq": 1, "epoch": epoch}}, "since seq 1 (too old)", [], False)
        await hist({"since": {"seq": 9, "epoch": epoch}}, "since seq 9 (ahead)", [], False)
        await hist({"since": {"seq": 5, "epoch": "ffffffffffff" if epoch != "ffffffffffff" else "0" * 12}},
                   "since another epoch", [], False)
        extra = await sub.silence()
        c.check(extra is None, "%s: a history request replays nothing onto the subscription" % what, extra)
    finally:
        await pub.close()
        await sub.close()


# ---- 6. presence, join/leave ---------------------------------------------------------------


async def section_presence(c, server):
    what = "6 presence"
    ch = "roomP"
    a1 = await open_client(c, server, "alice", what)
    a2 = await open_client(c, server, "alice", what)
    bob = await open_client(c, server, "bob", what)
    try:
        r = await a1.reply({"type": "presence", "channel": ch})
        c.equal((r.get("type"), r.get("channel"), r.get("clients")), ("presence.ok", ch, []),
                "%s: nobody present at first" % what)
        r = await a1.reply({"type": "subscribe", "channel": ch})
        c.equal(r.get("type"), "subscribe.ok", "%s: alice#1 subscribes" % what)
        r, skipped = await a2.call({"type": "subscribe", "channel": ch})
        c.equal((r.get("type"), skipped), ("subscribe.ok", []), "%s: alice#2 subscribes, gets no join of her own" % what)
        j = await a1.recv()
        c.equal(j, {"type": "join", "channel": ch, "user": "alice", "session": a2.session},
                "%s: alice#1 is told alice#2 joined" % what)
        r, skipped = await bob.call({"type": "subscribe", "channel": ch})
        c.equal((r.get("type"), skipped), ("subscribe.ok", []), "%s: bob subscribes, gets no join of his own" % what)
        for who, cl in (("alice#1", a1), ("alice#2", a2)):
            j = await cl.recv()
            c.equal(j, {"type": "join", "channel": ch, "user": "bob", "session": bob.session},
                    "%s: %s is told bob joined" % (what, who))
        extra = await bob.silence()
        c.check(extra is None, "%s: bob gets no join at all (not of himself)" % what, extra)

        r = await a2.reply({"type": "subscribe", "channel": ch})
        c.equal(r.get("type"), "subscribe.ok", "%s: alice#2 subscribes again" % what)
        extra = await a1.silence()
        c.check(extra is None, "%s: a repeated subscribe announces no second join" % what, extra)

        pid = next_id("p")
        r = await bob.reply({"type": "presence", "id": pid, "channel": ch})
        c.equal((r.get("type"), r.get("id"), r.get("channel")), ("presence.ok", pid, ch), "%s: presence.ok" % what)
        clients = r.get("clients") or []
        c.equal(sorted((e.get("session"), e.get("user")) for e in clients),
                sorted([(a1.session, "alice"), (a2.session, "alice"), (bob.session, "bob")]),
                "%s: presence lists the three sessions with their users" % what)
        c.check(all(sorted(e.keys()) == ["session", "user"] for e in clients),
                "%s: each presence entry is {session, user}" % what, clients)
        sid = next_id("ps")
        r = await a1.reply({"type": "presence_stats", "id": sid, "channel": ch})
        c.equal(r, {"type": "presence_stats.ok", "id": sid, "channel": ch, "clients": 3, "users": 2},
                "%s: presence_stats clients 3 users 2" % what)

        # typing: to the others, no seq, not kept.
        r = await bob.reply({"type": "chat", "channel": ch, "data": "before typing"})
        chat_seq = r.get("seq")
        for cl in (a1, a2, bob):
            m = await cl.recv()
            c.equal((m.get("type"), m.get("seq")), ("chat", chat_seq), "%s: the chat reaches every subscriber" % what)
        await send_json(bob.ws, {"type": "typing", "channel": ch, "typing": True})
        for who, cl in (("alice#1", a1), ("alice#2", a2)):
            m = await cl.recv()
            c.equal(m, {"type": "typing", "channel": ch, "from": "bob", "typing": True},
                    "%s: %s gets bob's typing, without seq" % (what, who))
        h = await a1.reply({"type": "history", "channel": ch})
        c.equal(([m.get("type") for m in h.get("messages", [])], h.get("seq")), (["chat"], chat_seq),
                "%s: typing is not in history and takes no seq" % what)
        r = await bob.reply({"type": "chat", "channel": ch, "data": "after typing"})
        c.equal(r.get("seq"), chat_seq + 1, "%s: the next chat's seq follows directly" % what)
        for cl in (a1, a2, bob):
            await cl.until(lambda m: m.get("type") == "chat")
        extra = await bob.silence()
        c.check(extra is None, "%s: bob does not get his own typing" % what, extra)

        # leave on unsubscribe
        r, skipped = await a2.call({"type": "unsubscribe", "channel": ch})
        c.equal((r.get("type"), skipped), ("unsubscribe.ok", []), "%s: alice#2 unsubscribes, no leave of her own" % what)
        for who, cl in (("alice#1", a1), ("bob", bob)):
            m = await cl.recv()
            c.equal(m, {"type": "leave", "channel": ch, "user": "alice", "session": a2.session},
                    "%s: %s is told alice#2 left (unsubscribe)" % (what, who))
        r = await a2.reply({"type": "unsubscribe", "channel": ch})
        extra = await a1.silence()
        c.check(extra is None, "%s: a second unsubscribe announces no second leave" % what, extra)
        r = await a1.reply({"type": "presence_stats", "channel": ch})
        c.equal((r.get("clients"), r.get("users")), (2, 2), "%s: presence_stats after the unsubscribe: 2 clients 2 users" % what)

        # leave on disconnect
        await bob.close()
        m = await a1.recv()
        c.equal(m, {"type": "leave", "channel": ch, "user": "bob", "session": bob.session},
                "%s: alice#1 is told bob left (disconnect)" % what)
        r = await a1.reply({"type": "presence", "channel": ch})
        c.equal(r.get("clients"), [{"session": a1.session, "user": "alice"}], "%s: presence lists alice#1 only" % what)
        r = await a1.reply({"type": "presence_stats", "channel": ch})
        c.equal((r.get("clients"), r.get("users")), (1, 1), "%s: presence_stats 1 client 1 user" % what)
        extra = await a2.silence()
        c.check(extra is None, "%s: alice#2 (unsubscribed) hears nothing of bob leaving" % what, extra)

        # presence without history (pres*): presence works, no join/leave.
        r = await a1.reply({"type": "subscribe", "channel": "presOnly"})
        c.check("epoch" not in r and "seq" not in r, "%s: a presence-only channel's subscribe.ok has no position" % what, r)
        r = await a2.reply({"type": "subscribe", "channel": "presOnly"})
        extra = await a1.silence()
        c.check(extra is None, "%s: no join in a channel without join_leave" % what, extra)
        r = await a2.reply({"type": "presence_stats", "channel": "presOnly"})
        c.equal((r.get("type"), r.get("clients"), r.get("users")), ("presence_stats.ok", 2, 1),
                "%s: presence_stats in a presence-only channel: 2 clients 1 user" % what)
    finally:
        for cl in (a1, a2, bob):
            await cl.close()


# ---- 7. errors ------------------------------------------------------------------------

SINCE_MSG = "field 'since' must be an object {\"seq\": <integer>, \"epoch\": <string>}"
SEQ_MSG = "field 'since.seq' must be a non-negative integer"
EPOCH_MSG = "field 'since.epoch' must be a string"
LIMIT_MSG = "field 'limit' must be a non-negative integer"

BAD_SINCE = [
    ("a string", "10", SINCE_MSG),
    ("an array", [10, "abc"], SINCE_MSG),
    ("null", None, SINCE_MSG),
    ("a number", 10, SINCE_MSG),
    ("missing seq", {"epoch": "abcdefabcdef"}, SEQ_MSG),
    ("negative seq", {"seq": -1, "epoch": "abcdefabcdef"}, SEQ_MSG),
    ("float seq", {"seq": 1.5, "epoch": "abcdefabcdef"}, SEQ_MSG),
    ("string seq", {"seq": "1", "epoch": "abcdefabcdef"}, SEQ_MSG),
    ("missing epoch", {"seq": 1}, EPOCH_MSG),
    ("number epoch", {"seq": 1, "epoch": 12}, EPOCH_MSG),
    ("null epoch", {"seq": 1, "epoch": None}, EPOCH_MSG),
]


async def expect_error(c, cl, msg, code, message, what):
    rid = next_id("e")
    msg = dict(msg, id=rid)
    r = await cl.reply(msg)
    c.equal((r.get("type"), r.get("id"), r.get("code"), r.get("message")), ("error", rid, code, message), what)


async def section_errors(c, server):
    what = "7 errors"
    anon = await open_client(c, server, None, what)
    cl = await open_client(c, server, "erin", what)
    watcher = await open_client(c, server, "walt", what)
    try:
        for t in ("subscribe", "history", "presence", "presence_stats"):
            await expect_error(c, anon, {"type": t, "channel": "room1"}, "unauthorized", "authenticate first",
                               "%s: %s before auth → unauthorized" % (what, t))
        for t in ("history", "presence", "presence_stats"):
            await expect_error(c, anon, {"type": t, "channel": "plain7"}, "unauthorized", "authenticate first",
                               "%s: %s before auth on a plain channel → unauthorized" % (what, t))

        no_history = "channel '%s' keeps no history"
        no_presence = "channel '%s' has no presence"
        for ch in ("plain7", "presOnly7"):
            await expect_error(c, cl, {"type": "history", "channel": ch}, "not_available", no_history % ch,
                               "%s: history on %s → not_available" % (what, ch))
        for ch in ("plain7", "hist7", "short7"):
            for t in ("presence", "presence_stats"):
                await expect_error(c, cl, {"type": t, "channel": ch}, "not_available", no_presence % ch,
                                   "%s: %s on %s → not_available" % (what, t, ch))

        r = await watcher.reply({"type": "subscribe", "channel": "room7"})
        for label, since, message in BAD_SINCE:
            await expect_error(c, cl, {"type": "subscribe", "channel": "room7", "since": since}, "bad_request", message,
                               "%s: subscribe with since %s → bad_request" % (what, label))
            await expect_error(c, cl, {"type": "history", "channel": "room7", "since": since}, "bad_request", message,
                               "%s: history with since %s → bad_request" % (what, label))
        extra = await watcher.silence()
        c.check(extra is None, "%s: a refused subscribe announces no join" % what, extra)
        r = await cl.reply({"type": "presence_stats", "channel": "room7"})
        c.equal(r.get("clients"), 1, "%s: a refused subscribe does not subscribe" % what)

        for label, limit in (("-1", -1), ("1.5", 1.5), ("a string", "5"), ("true", True), ("null", None),
                             ("an object", {"n": 1})):
            await expect_error(c, cl, {"type": "history", "channel": "room7", "limit": limit}, "bad_request", LIMIT_MSG,
                               "%s: history limit %s → bad_request" % (what, label))

        # subscribe's old checks still come first
        await expect_error(c, cl, {"type": "history", "channel": ""}, "bad_request",
                           "field 'channel' must be a non-empty string", "%s: history without a channel" % what)
        await expect_error(c, cl, {"type": "history", "channel": "user:other"}, "forbidden",
                           "channel 'user:other' belongs to another user",
                           "%s: history of another user's channel → forbidden" % what)
        for t in ("history", "presence", "presence_stats"):
            r = await cl.reply({"type": t, "channel": "room7"})
            c.equal(r.get("type"), t + ".ok", "%s: after all the errors %s still works" % (what, t))
    finally:
        for x in (anon, cl, watcher):
            await x.close()


async def section_forbidden(c, binary, folder):
    what = "7 forbidden (JWT)"
    cfg = write_config(folder)
    server = Server(binary, ["--config", cfg], env=clean_env({"WSRELAY_JWT_SECRET": SECRET}))
    server.start()
    try:
        now = int(time.time())
        token = make_jwt({"sub": "nina", "exp": now + 120, "channels": ["news.*", "roomGranted"]})
        cl = await open_client(c, server, token, what, user="nina")
        for ch in ("room1", "roomOther"):
            message = "the token does not grant channel '%s'" % ch
            for t in ("subscribe", "history", "presence", "presence_stats"):
                await expect_error(c, cl, {"type": t, "channel": ch}, "forbidden", message,
                                   "%s: %s on %s (not in the channels claim) → forbidden" % (what, t, ch))
            await expect_error(c, cl, {"type": "subscribe", "channel": ch, "since": {"seq": 0, "epoch": "x"}},
                               "forbidden", message, "%s: subscribe with since on %s → forbidden" % (what, ch))
        # forbidden is checked before not_available: the reply does not tell
        # whether the channel keeps anything.
        await expect_error(c, cl, {"type": "history", "channel": "plainOther"}, "forbidden",
                           "the token does not grant channel 'plainOther'",
                           "%s: history of an ungranted plain channel → forbidden" % what)
        for t in ("subscribe", "history", "presence", "presence_stats"):
            r = await cl.reply({"type": t, "channel": "roomGranted"})
            c.equal(r.get("type"), t + ".ok", "%s: %s on a granted channel works" % (what, t))
        await expect_error(c, cl, {"type": "history", "channel": "news.x"}, "not_available",
                           "channel 'news.x' keeps no history", "%s: history of a granted plain channel → not_available" % what)
        bad = make_jwt({"sub": "nina", "exp": now + 120}, secret="another-secret")
        anon = await open_client(c, server, None, what)
        r = await anon.reply({"type": "auth", "token": bad})
        c.equal((r.get("type"), r.get("code")), ("error", "unauthorized"), "%s: a badly signed token is refused" % what)
        await expect_error(c, anon, {"type": "history", "channel": "roomGranted"}, "unauthorized", "authenticate first",
                           "%s: history after a refused auth → unauthorized" % what)
        # A re-auth that drops the channel leaves it as the previous user.
        watcher = await open_client(c, server, make_jwt({"sub": "walt", "exp": now + 120, "channels": ["room*"]}),
                                    what, user="walt")
        mover = await open_client(c, server, make_jwt({"sub": "alice", "exp": now + 120, "channels": ["room*"]}),
                                  what, user="alice")
        await watcher.reply({"type": "subscribe", "channel": "roomShared"})
        await mover.reply({"type": "subscribe", "channel": "roomShared"})
        j = await watcher.recv()
        c.equal(j, {"type": "join", "channel": "roomShared", "user": "alice", "session": mover.session},
                "%s: the watcher is told alice joined" % what)
        r = await mover.reply({"type": "auth", "token": make_jwt({"sub": "bob", "exp": now + 120,
                                                                 "channels": ["news.*"]})})
        c.equal((r.get("type"), r.get("user"), r.get("unsubscribed")), ("auth.ok", "bob", ["roomShared"]),
                "%s: a re-auth as bob (news.* only) drops roomShared" % what)
        m = await watcher.recv()
        c.equal(m, {"type": "leave", "channel": "roomShared", "user": "alice", "session": mover.session},
                "%s: the watcher is told alice (the previous user) left" % what)
        r = await watcher.reply({"type": "presence", "channel": "roomShared"})
        c.equal(r.get("clients"), [{"session": watcher.session, "user": "walt"}],
                "%s: presence no longer lists the re-authenticated session" % what)
        for x in (cl, anon, watcher, mover):
            await x.close()
    finally:
        rc = await asyncio.to_thread(server.stop)
    c.equal(rc, 0, "%s: the JWT server exits 0 on SIGTERM" % what)


# ---- 8. plain channels ---------------------------------------------------------------------


async def section_plain(c, server):
    what = "8 plain"
    ch = "plain8"
    a = await open_client(c, server, "pam", what)
    b = await open_client(c, server, "pat", what)
    try:
        sid = next_id("s")
        r = await a.reply({"type": "subscribe", "id": sid, "channel": ch})
        c.equal(r, {"type": "subscribe.ok", "id": sid, "channel": ch},
                "%s: subscribe.ok has no epoch, seq or recovered" % what)
        r, skipped = await b.call({"type": "subscribe", "channel": ch})
        c.equal(skipped, [], "%s: no join frames" % what)
        extra = await a.silence()
        c.check(extra is None, "%s: no join in a plain channel" % what, extra)
        # A since on a plain channel is accepted and ignored (no position).
        r = await b.reply({"type": "subscribe", "channel": ch, "since": {"seq": 3, "epoch": "abcabcabcabc"}})
        c.check(r.get("type") == "subscribe.ok" and not ({"epoch", "seq", "recovered"} & set(r)),
                "%s: subscribe with since in a plain channel: no position, no recovered" % what, r)
        seqs = []
        for i in range(3):
            ok = await b.chat(ch, i)
            seqs.append(ok.get("seq"))
        c.equal(seqs, [1, 2, 3], "%s: chat.ok seq from next_seq, starting at 1" % what)
        got = [json.loads(t) for t in await a.frames(3)]
        c.equal([(m.get("seq"), m.get("data")) for m in got], [(1, 0), (2, 1), (3, 2)],
                "%s: the broadcasts carry seq 1..3" % what)
        c.equal(sorted(got[0].keys()), ["channel", "data", "from", "seq", "ts", "type"],
                "%s: the broadcast's members as before" % what)
        await b.reply({"type": "unsubscribe", "channel": ch})
        extra = await a.silence()
        c.check(extra is None, "%s: no leave in a plain channel" % what, extra)
    finally:
        await a.close()
        await b.close()


# ---- 9. /status and /metrics -----------------------------------------------------------------


async def section_status(c, binary, folder):
    what = "9 status"
    cfg = write_config(folder)
    server = Server(binary, ["--config", cfg], env=clean_env())
    server.start()
    clients = []
    try:
        st = status_of(server)
        c.equal((st.get("history"), st.get("presence_entries"), st.get("recoveries")),
                ({"channels": 0, "bytes": 0, "publications": 0, "memory_limit_bytes": 64 << 20,
                  "dropped_for_memory": 0}, 0, {"recovered": 0, "not_recovered": 0}),
                "%s: a fresh server: empty history, no presence, no recoveries" % what)
        c.equal((st.get("limits") or {}).get("history_memory_mb"), 64, "%s: limits.history_memory_mb default 64" % what)
        s1 = await open_client(c, server, "u1", what)
        s2 = await open_client(c, server, "u2", what)
        pub = await open_client(c, server, "u3", what)
        clients += [s1, s2, pub]
        r = await s1.reply({"type": "subscribe", "channel": "roomS1"})
        epoch1 = r.get("epoch")
        await s2.reply({"type": "subscribe", "channel": "roomS1"})
        await s1.recv()  # s2's join
        await s2.reply({"type": "subscribe", "channel": "plainS"})
        await s2.reply({"type": "subscribe", "channel": "histS"})  # history, no presence
        await s1.reply({"type": "subscribe", "channel": "roomS2"})
        for i in range(4):
            await pub.chat("roomS1", "x" * (10 + i))
        for i in range(2):
            await pub.chat("roomS2", "y" * 20)
        kept = await s1.chats(6)
        c.equal([(m.get("channel"), m.get("seq")) for _, m in kept],
                [("roomS1", 1), ("roomS1", 2), ("roomS1", 3), ("roomS1", 4), ("roomS2", 1), ("roomS2", 2)],
                "%s: the six kept publications reach s1" % what)
        payload = sum(len(raw.encode("utf-8")) for raw, _ in kept)
        await pub.chat("plainS", "not kept")
        await send_json(pub.ws, {"type": "typing", "channel": "roomS1", "typing": True})
        h2 = await pub.reply({"type": "history", "channel": "roomS2"})
        # a history request with since is not a recovery
        await pub.reply({"type": "history", "channel": "roomS1", "since": {"seq": 0, "epoch": epoch1}})

        s3 = await open_client(c, server, "u1", what)
        clients.append(s3)
        r = await s3.reply({"type": "subscribe", "channel": "roomS1", "since": {"seq": 2, "epoch": epoch1}})
        c.equal(r.get("recovered"), True, "%s: one recovery that succeeds" % what)
        await s3.frames(2)
        r = await s3.reply({"type": "subscribe", "channel": "roomS2", "since": {"seq": 0, "epoch": "bogus"}})
        c.equal(r.get("recovered"), False, "%s: one that does not (epoch)" % what)
        r = await s3.reply({"type": "subscribe", "channel": "roomS2", "since": {"seq": 99, "epoch": h2.get("epoch")}})
        c.equal(r.get("recovered"), False, "%s: one that does not (ahead)" % what)
        r = await s3.reply({"type": "subscribe", "channel": "plainS", "since": {"seq": 0, "epoch": "x"}})
        c.check("recovered" not in r, "%s: since on a plain channel is no recovery" % what, r)

        st = status_of(server)
        hist = st.get("history") or {}
        # streams: roomS1, roomS2 (published), histS (subscribed: it has a position)
        c.equal((hist.get("channels"), hist.get("publications")), (3, 6),
                "%s: history channels 3 (roomS1, roomS2, histS), publications 6" % what)
        c.check(payload <= hist.get("bytes", 0) <= payload + 6 * 256,
                "%s: history bytes = the 6 kept payloads (%d bytes) plus a bounded overhead" % (what, payload), hist)
        c.equal(hist.get("dropped_for_memory"), 0, "%s: nothing dropped for memory" % what)
        # presence entries: roomS1 (s1, s2, s3), roomS2 (s1, s3); not plainS or histS
        c.equal(st.get("presence_entries"), 5, "%s: presence_entries 5 (roomS1 ×3, roomS2 ×2)" % what)
        c.equal(st.get("recoveries"), {"recovered": 1, "not_recovered": 2},
                "%s: recoveries recovered 1, not_recovered 2" % what)

        m = metrics_of(server)
        for name, expected in (("wsrelay_history_channels", hist.get("channels")),
                               ("wsrelay_history_bytes", hist.get("bytes")),
                               ("wsrelay_history_publications", hist.get("publications")),
                               ("wsrelay_history_streams_dropped_total", 0),
                               ("wsrelay_presence_entries", 5),
                               ('wsrelay_recoveries_total{result="recovered"}', 1),
                               ('wsrelay_recoveries_total{result="not_recovered"}', 2)):
            c.equal(m.get(name), float(expected) if expected is not None else None,
                    "%s: /metrics %s" % (what, name))

        # A disconnect takes its presence entries away.
        await s3.close()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and status_of(server).get("presence_entries") != 3:
            await asyncio.sleep(0.02)
        c.equal(status_of(server).get("presence_entries"), 3, "%s: presence_entries 3 after s3 disconnects" % what)
        c.equal(metrics_of(server).get("wsrelay_presence_entries"), 3.0, "%s: /metrics agrees" % what)
    finally:
        for cl in clients:
            await cl.close()
        rc = await asyncio.to_thread(server.stop)
    c.equal(rc, 0, "%s: the server exits 0 on SIGTERM" % what)


# ---- 10. /admin/broadcast ---------------------------------------------------------------------


def admin_broadcast(server, body):
    status, _, text = http_get(server.connect_host(), server.port, "/admin/broadcast", method="POST",
                               headers={"Authorization": "Bearer " + ADMIN_TOKEN,
                                        "Content-Type": "application/json"},
                               body=body if isinstance(body, str) else json.dumps(body))
    try:
        answer = json.loads(text)
    except ValueError:
        answer = text
    return status, answer


async def section_admin(c, server):
    what = "10 admin"
    ch = "roomAdmin"
    sub = await open_client(c, server, "adm", what)
    try:
        r = await sub.reply({"type": "subscribe", "channel": ch})
        epoch = r.get("epoch")
        status, answer = admin_broadcast(server, {"channel": ch, "message": {"type": "notice", "text": "hi"}})
        c.equal((status, answer), (200, {"delivered": 1, "seq": 1}), "%s: broadcast answers delivered and seq 1" % what)
        raw = await sub.recv_raw()
        c.equal(json.loads(raw), {"type": "notice", "text": "hi", "seq": 1}, "%s: the subscriber gets it with seq 1" % what)
        c.check(raw.endswith(',"seq":1}'), "%s: seq spliced as the last member" % what, raw)

        status, answer = admin_broadcast(server, {"channel": ch, "message": {"type": "notice", "text": "gone"},
                                                  "history": False})
        c.equal((status, answer), (200, {"delivered": 1}), "%s: \"history\": false answers without seq" % what)
        m = await sub.recv()
        c.equal(m, {"type": "notice", "text": "gone"}, "%s: the ephemeral broadcast arrives without seq" % what)
        status, answer = admin_broadcast(server, {"channel": ch, "message": "plain text, not kept", "history": False})
        c.equal((status, answer), (200, {"delivered": 1}), "%s: a text message with \"history\": false is fine" % what)
        raw = await sub.recv_raw()
        c.equal(raw, "plain text, not kept", "%s: the text arrives as sent" % what)

        for label, body in (("a message with its own seq", {"channel": ch, "message": {"type": "x", "seq": 99}}),
                            ("a string message", {"channel": ch, "message": "hello"}),
                            ("an array message", {"channel": ch, "message": [1, 2]}),
                            ("a number message", {"channel": ch, "message": 5}),
                            ("a non-boolean history", {"channel": ch, "message": {"type": "x"}, "history": "no"})):
            status, answer = admin_broadcast(server, body)
            c.check(status == 400 and isinstance(answer, dict) and answer.get("error") == "bad_request",
                    "%s: %s in a history channel → 400 bad_request" % (what, label), (status, answer))
        extra = await sub.silence()
        c.check(extra is None, "%s: the refused broadcasts reach nobody" % what, extra)

        h = await sub.reply({"type": "history", "channel": ch})
        c.equal((h.get("epoch"), h.get("seq"), h.get("messages")),
                (epoch, 1, [{"type": "notice", "text": "hi", "seq": 1}]),
                "%s: history keeps only the kept broadcast" % what)
        ok = await sub.chat(ch, "after")
        c.equal(ok.get("seq"), 2, "%s: the next chat gets seq 2 (the ephemeral ones took none)" % what)
        await sub.recv()

        # no subscriber: kept anyway, delivered 0
        status, answer = admin_broadcast(server, {"channel": "roomAdminEmpty", "message": {"type": "n"}})
        c.equal((status, answer), (200, {"delivered": 0, "seq": 1}),
                "%s: to a history channel nobody is subscribed to: delivered 0, seq 1" % what)
        h = await sub.reply({"type": "history", "channel": "roomAdminEmpty"})
        c.equal(h.get("messages"), [{"type": "n", "seq": 1}], "%s: and it is kept" % what)
        # a plain channel: as before, no seq; a message with seq is fine there
        status, answer = admin_broadcast(server, {"channel": "plainAdmin", "message": {"type": "n", "seq": 7}})
        c.equal((status, answer), (200, {"delivered": 0}), "%s: to a plain channel: no seq, own seq allowed" % what)
    finally:
        await sub.close()


# ---- 11. history_memory_mb ---------------------------------------------------------------------


async def section_memory(c, binary, folder):
    what = "11 memory"
    cfg = write_config(folder, {"limits": {"history_memory_mb": 1}})
    server = Server(binary, ["--config", cfg], env=clean_env())
    server.start()
    try:
        st = status_of(server)
        c.equal((st.get("history") or {}).get("memory_limit_bytes"), 1 << 20, "%s: memory_limit_bytes is 1 MiB" % what)
        c.equal((st.get("limits") or {}).get("history_memory_mb"), 1, "%s: limits.history_memory_mb 1" % what)
        pub = await open_client(c, server, "pubm", what)
        watcher = await open_client(c, server, "watch", what)
        big = "z" * 100000
        ok = await pub.chat("big0", big)
        c.equal(ok.get("seq"), 1, "%s: the first large chat" % what)
        h = await watcher.reply({"type": "history", "channel": "big0", "limit": 0})
        old_epoch = h.get("epoch")
        epochs = {}
        for i in range(1, 20):
            ok = await pub.chat("big%d" % i, big)
            c.check(ok.get("type") == "chat.ok", "%s: a 100 kB chat to big%d" % (what, i), ok)
        h = await watcher.reply({"type": "history", "channel": "big19", "limit": 0})
        epochs["big19"] = h.get("epoch")
        st = status_of(server)
        hist = st.get("history") or {}
        c.check(hist.get("dropped_for_memory", 0) > 0, "%s: dropped_for_memory > 0 after 2 MB across 20 channels" % what,
                hist)
        c.check(hist.get("bytes", 1 << 30) <= 1 << 20, "%s: kept history bytes within 1 MiB" % what, hist)
        c.check(0 < hist.get("channels", 0) < 20, "%s: fewer than 20 streams kept" % what, hist)
        c.equal(metrics_of(server).get("wsrelay_history_streams_dropped_total"), float(hist.get("dropped_for_memory", -1)),
                "%s: /metrics streams dropped = /status dropped_for_memory" % what)

        r = await watcher.reply({"type": "subscribe", "channel": "big0", "since": {"seq": 1, "epoch": old_epoch}})
        c.equal((r.get("type"), r.get("recovered"), r.get("seq")), ("subscribe.ok", False, 0),
                "%s: recovery on the dropped stream big0 → recovered:false, seq 0" % what)
        c.check(r.get("epoch") != old_epoch, "%s: the dropped stream comes back with a new epoch" % what,
                (old_epoch, r.get("epoch")))
        extra = await watcher.silence()
        c.check(extra is None, "%s: no replay from a dropped stream" % what, extra)
        r = await watcher.reply({"type": "subscribe", "channel": "big19", "since": {"seq": 0, "epoch": epochs["big19"]}})
        c.equal((r.get("recovered"), r.get("seq")), (True, 1), "%s: the newest stream is still recoverable" % what)
        m = await watcher.recv()
        c.equal((m.get("seq"), len(m.get("data", ""))), (1, 100000), "%s: and replays its publication" % what)

        # One stream alone over the bound keeps its newest publications.
        for i in range(15):
            await pub.chat("bigOne", big)
        h = await watcher.reply({"type": "history", "channel": "bigOne"})
        seqs = [x.get("seq") for x in h.get("messages", [])]
        c.check(h.get("seq") == 15 and seqs and seqs[-1] == 15 and seqs == list(range(seqs[0], 16)) and seqs[0] > 1,
                "%s: a single stream over the bound keeps only its newest, consecutive" % what, seqs)

        # big19 has a subscriber (watcher): the bound took its publication, not
        # its position, so its seq goes on in the same epoch.
        h = await watcher.reply({"type": "history", "channel": "big19"})
        c.equal((h.get("epoch"), h.get("seq"), h.get("messages")), (epochs["big19"], 1, []),
                "%s: a subscribed stream over the bound: history empty, same epoch, seq 1" % what)
        r = await pub.reply({"type": "subscribe", "channel": "big19", "since": {"seq": 0, "epoch": epochs["big19"]}})
        c.equal((r.get("recovered"), r.get("epoch"), r.get("seq")), (False, epochs["big19"], 1),
                "%s: recovery from before its dropped publication → recovered:false, same epoch" % what)
        await pub.reply({"type": "unsubscribe", "channel": "big19"})
        ok = await pub.chat("big19", "small")
        c.equal(ok.get("seq"), 2, "%s: the next chat to the subscribed big19 gets seq 2, not 1" % what)
        m = await watcher.recv()
        c.equal((m.get("channel"), m.get("data"), m.get("seq")), ("big19", "small", 2),
                "%s: and reaches its subscriber as seq 2" % what)

        # still serving
        r = await pub.reply({"type": "heartbeat"})
        c.equal(r.get("type"), "heartbeat", "%s: the server still answers a heartbeat" % what)
        ok = await pub.chat("big0", "small")
        c.equal(ok.get("seq"), 1, "%s: publishing to big0 again works (seq 1 in its new stream)" % what)
        m = await watcher.recv()
        c.equal((m.get("channel"), m.get("data"), m.get("seq")), ("big0", "small", 1),
                "%s: and reaches its subscriber" % what)
        status, _, body = http_get(server.connect_host(), server.port, "/healthz")
        c.equal((status, body), (200, "ok"), "%s: /healthz ok" % what)
        c.check(server.alive(), "%s: the server is alive" % what)
        await pub.close()
        await watcher.close()
    finally:
        rc = await asyncio.to_thread(server.stop)
    c.equal(rc, 0, "%s: the server exits 0 on SIGTERM" % what)


# ---- 12. history_ttl with live subscribers -------------------------------------------------------


async def history_until(cl, ch, predicate, timeout=5.0):
    """history.ok of ch, asked every 0.1 s until predicate(it) or timeout: a
    ttl is time passing, and this waits for its effect, not for a guess."""
    deadline = time.monotonic() + timeout
    while True:
        h = await cl.reply({"type": "history", "channel": ch})
        if predicate(h) or time.monotonic() > deadline:
            return h
        await asyncio.sleep(0.1)


async def section_ttl_subscribed(c, server):
    what = "12 ttl subscribed"
    ch = "ttlLive"  # history_ttl 1 s
    a = await open_client(c, server, "a12", what)
    b = await open_client(c, server, "b12", what)
    late = await open_client(c, server, "late12", what)
    try:
        ra = await a.reply({"type": "subscribe", "channel": ch})
        rb = await b.reply({"type": "subscribe", "channel": ch})
        epoch = ra.get("epoch")
        c.equal((rb.get("epoch"), rb.get("seq")), (epoch, 0), "%s: two subscribers, one epoch, seq 0" % what)
        c.equal((await a.chat(ch, "one")).get("seq"), 1, "%s: the first chat gets seq 1" % what)
        (_, m), = await b.chats(1)
        c.equal((m.get("data"), m.get("seq")), ("one", 1), "%s: b gets it with seq 1" % what)
        await a.chats(1)

        # The ttl passes with both still subscribed: the kept publication goes,
        # the position stays.
        h = await history_until(late, ch, lambda h: h.get("messages") == [])
        c.equal((h.get("epoch"), h.get("seq"), h.get("messages")), (epoch, 1, []),
                "%s: past the ttl: history empty, same epoch, seq still 1" % what)
        ok = await a.chat(ch, "two")
        c.equal(ok.get("seq"), 2, "%s: the next chat continues at seq 2 (not 1)" % what)
        (_, m), = await b.chats(1)
        c.equal((m.get("data"), m.get("seq")), ("two", 2), "%s: b gets it as seq 2, which its client keeps" % what)
        await a.chats(1)
        r = await b.reply({"type": "subscribe", "channel": ch})
        c.equal((r.get("epoch"), r.get("seq")), (epoch, 2), "%s: the stream is still the same epoch" % what)

        # A recovery from before the expired publication: recovered:false, no replay.
        r = await late.reply({"type": "subscribe", "channel": ch, "since": {"seq": 0, "epoch": epoch}})
        c.equal((r.get("type"), r.get("recovered"), r.get("epoch"), r.get("seq")),
                ("subscribe.ok", False, epoch, 2),
                "%s: since seq 0 (seq 1 expired) → recovered:false, same epoch, seq 2" % what)
        extra = await late.silence()
        c.check(extra is None, "%s: no replay from before the expired publication" % what, extra)
        await late.reply({"type": "unsubscribe", "channel": ch})
        r = await late.reply({"type": "subscribe", "channel": ch, "since": {"seq": 1, "epoch": epoch}})
        c.equal((r.get("recovered"), r.get("seq")), (True, 2), "%s: since seq 1 (seq 2 kept) → recovered:true" % what)
        got = [json.loads(t) for t in await late.drain()]
        c.equal([(x.get("data"), x.get("seq")) for x in got], [("two", 2)], "%s: it replays seq 2 only" % what)

        # Nobody subscribed any more: once the ttl passed, the stream starts afresh.
        for cl in (a, b, late):
            r = await cl.reply({"type": "unsubscribe", "channel": ch})
            c.equal(r.get("type"), "unsubscribe.ok", "%s: unsubscribe" % what)
        h = await history_until(late, ch, lambda h: h.get("epoch") != epoch)
        c.check(EPOCH_RE.match(str(h.get("epoch"))) and h.get("epoch") != epoch,
                "%s: with no subscriber, past the ttl: a new epoch" % what, (epoch, h.get("epoch")))
        c.equal((h.get("seq"), h.get("messages")), (0, []), "%s: the new stream is empty at seq 0" % what)
        r = await a.reply({"type": "subscribe", "channel": ch, "since": {"seq": 2, "epoch": epoch}})
        c.equal((r.get("recovered"), r.get("seq")), (False, 0), "%s: since the old epoch → recovered:false, seq 0" % what)
        c.check(r.get("epoch") != epoch, "%s: subscribe.ok gives the new epoch" % what, r)
        c.equal((await b.chat(ch, "fresh")).get("seq"), 1, "%s: the new stream starts at seq 1" % what)
    finally:
        for cl in (a, b, late):
            await cl.close()


# ---- main -------------------------------------------------------------------------------------


async def run_section(c, name, coro):
    t0 = time.monotonic()
    try:
        await coro
    except Exception as exc:  # noqa: BLE001 - one section's failure must not hide the next
        c.error(name, exc)
    if os.environ.get("WSRELAY_TEST_TIMING"):
        print("section %s: %.1f s" % (name, time.monotonic() - t0), flush=True)


async def main(c):
    binary, _ = usage_args()
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as folder:
        cfg = write_config(folder)
        server = Server(binary, ["--config", cfg], env=clean_env({"WSRELAY_ADMIN_TOKEN": ADMIN_TOKEN}))
        try:
            server.start()
        except ServerError as exc:
            c.check(False, "start wsrelay with channel_options", str(exc))
            return
        try:
            ttl = None
            try:
                ttl = await ttl_start(c, server)
            except Exception as exc:  # noqa: BLE001
                c.error("4 ttl start", exc)
            await run_section(c, "1 recover", section_recover(c, server))
            await run_section(c, "2 no subscriber", section_no_subscriber(c, server))
            await run_section(c, "5 history", section_history(c, server))
            await run_section(c, "6 presence", section_presence(c, server))
            await run_section(c, "7 errors", section_errors(c, server))
            await run_section(c, "8 plain", section_plain(c, server))
            await run_section(c, "10 admin", section_admin(c, server))
            await run_section(c, "12 ttl subscribed", section_ttl_subscribed(c, server))
            if ttl is not None:
                await run_section(c, "4 not recovered", section_not_recovered(c, server, ttl))
            c.check(server.alive(), "the main server is still running")
        finally:
            rc = await asyncio.to_thread(server.stop)
        c.equal(rc, 0, "the main server exits 0 on SIGTERM")

    for name, fn in (("3 restart", section_restart), ("7 forbidden", section_forbidden),
                     ("9 status", section_status), ("11 memory", section_memory)):
        with tempfile.TemporaryDirectory() as folder:
            await run_section(c, name, fn(c, binary, folder))
    print("took %.1f s" % (time.monotonic() - started), flush=True)


if __name__ == "__main__":
    sys.exit(run_async_main(main, Checker()))
