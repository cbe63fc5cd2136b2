#!/usr/bin/python3
"""Instructions per message: the real wsrelay under callgrind, three paths.

Each path runs the server twice under `valgrind --tool=callgrind`, once with
SMALL and once with LARGE messages, each over a fresh server, the same
clients and the same set-up; the difference of the two instruction totals
(Ir, every instruction the server process executed, libraries included)
divided by the difference of messages cancels start-up, connection set-up,
and shutdown. The clients (Debian's python3-websockets) keep exactly one
message in flight, so every run takes the same path through lws's loop.

  heartbeat  the standard protocol's heartbeat (/ws, built-in standard.lua):
             {"type":"heartbeat","id":N} in, {"type":"heartbeat","id":N,"ts":..}
             out: lws -> JSON decoded into Lua -> the handler -> reply encoded -> lws.
             Per message (one in, one out).
  fanout     1 publisher -> 10 subscribers on one channel (standard chat): per
             delivery, the publisher's own message and chat.ok included
             (i.e. the cost of a publish divided by 10).
  relay      client -> wsrelay (/relay, bench/conf/relay.lua) -> upstream
             echo (wsrelay-bench serve-echo, not under valgrind) -> wsrelay ->
             client. Per message (two in, two out).

usage:
  instructions.py --wsrelay BIN --bench WSRELAY_BENCH --record bench/instructions.json
  instructions.py --wsrelay BIN --bench WSRELAY_BENCH --check bench/instructions.json
  (--paths heartbeat,fanout,relay to run some only; --keep DIR keeps the
   callgrind files for callgrind_annotate)

--check fails (exit 1) when a path costs more than `tolerance` (10 %) over the
recorded figure. The figures belong to one build (RelWithDebInfo, the
distribution's lws, cJSON, Lua and glibc): re-record them, with the reason in
the commit message, when the code gets cheaper or a dependency changes.
"""

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import websockets

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOLERANCE = 0.10
FANOUT_SUBSCRIBERS = 10
# (small, large) message counts per path: enough that the difference dwarfs
# the run-to-run noise of set-up (a few thousand instructions), few enough
# that all six runs take well under two minutes.
COUNTS = {"heartbeat": (200, 800), "fanout": (40, 160), "relay": (200, 800)}
TIMEOUT = 60.0  # one reply under valgrind on a loaded machine; only a hang hits it


def start_server(args, workdir, out_file, extra_env=None):
    cfg = os.path.join(workdir, "wsrelay.json")
    with open(cfg, "w") as f:
        json.dump({
            "listen": {"host": "127.0.0.1", "port": 0},
            "log_level": "info",  # the "listening on" line gives the port
            "limits": {"messages_per_second": 0, "max_connections_per_ip": 0, "max_connections": 0},
            "endpoints": [
                {"path": "/ws"},
                {"path": "/relay", "script": os.path.join(ROOT, "bench", "conf", "relay.lua"),
                 "upstream": {"url": "ws://127.0.0.1:%d/" % args.upstream_port}},
            ],
        }, f)
    env = dict(os.environ)
    env.pop("WSRELAY_JWT_SECRET", None)  # development mode: the token is the user name
    env.update(extra_env or {})
    log = open(os.path.join(workdir, "server.log"), "w+")
    proc = subprocess.Popen(["valgrind", "--tool=callgrind", "--callgrind-out-file=" + out_file,
                             args.wsrelay, "--config", cfg, "--port", "0"],
                            stdout=log, stderr=subprocess.STDOUT, env=env)
    deadline = time.time() + 120
    while time.time() < deadline:
        log.seek(0)
        m = re.search(r"listening on ws://[^:\s]+:(\d+)", log.read())
        if m:
            return proc, int(m.group(1)), log
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    proc.kill()
    log.seek(0)
    raise RuntimeError("wsrelay did not start under valgrind:\n" + log.read()[-2000:])


def stop_server(proc, log):
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(120)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise RuntimeError("wsrelay did not stop on SIGTERM under valgrind")
    log.seek(0)
    text = log.read()
    log.close()
    if proc.returncode != 0:
        raise RuntimeError("wsrelay exited with %s:\n%s" % (proc.returncode, text[-2000:]))


def total_instructions(out_file):
    with open(out_file) as f:
        for line in f:
            if line.startswith("summary:") or line.startswith("totals:"):
                return int(line.split()[1])
    raise RuntimeError("no instruction total in " + out_file)


async def recv_json(ws):
    return json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))


async def standard_client(url, user):
    ws = await websockets.connect(url, open_timeout=TIMEOUT, ping_interval=None, max_size=None)
    assert (await recv_json(ws))["type"] == "welcome"
    await ws.send(json.dumps({"type": "auth", "id": 1, "token": user}))
    assert (await recv_json(ws))["type"] == "auth.ok"
    return ws


async def run_heartbeat(port, count):
    ws = await standard_client("ws://127.0.0.1:%d/ws" % port, "hb")
    for i in range(count):
        await ws.send('{"type":"heartbeat","id":%d}' % (1000000001 + i))  # 36 bytes, like the bench
        reply = await recv_json(ws)
        assert reply["type"] == "heartbeat", reply
    await ws.close()


async def run_fanout(port, count):
    url = "ws://127.0.0.1:%d/ws" % port
    subs = []
    for n in range(FANOUT_SUBSCRIBERS):
        ws = await standard_client(url, "sub%02d" % n)
        await ws.send(json.dumps({"type": "subscribe", "id": 2, "channel": "bench"}))
        assert (await recv_json(ws))["type"] == "subscribe.ok"
        subs.append(ws)
    pub = await standard_client(url, "pub")
    for i in range(count):
        await pub.send('{"type":"chat","id":%d,"channel":"bench","data":"0123456789abcdef"}' % (1000000001 + i))
        assert (await recv_json(pub))["type"] == "chat.ok"
        for ws in subs:
            got = await recv_json(ws)
            assert got["type"] == "chat", got
    for ws in subs + [pub]:
        await ws.close()


async def run_relay(port, count):
    ws = await websockets.connect("ws://127.0.0.1:%d/relay" % port, open_timeout=TIMEOUT, ping_interval=None)
    payload = "x" * 36
    for _ in range(count):
        await ws.send(payload)
        reply = await asyncio.wait_for(ws.recv(), TIMEOUT)
        assert reply == payload, reply
    await ws.close()


RUNNERS = {"heartbeat": run_heartbeat, "fanout": run_fanout, "relay": run_relay}
UNITS = {"heartbeat": "message", "fanout": "delivery", "relay": "message"}


def measure_once(args, path, count, workdir, keep):
    out_file = os.path.join(workdir, "callgrind.%s.%d.out" % (path, count))
    proc, port, log = start_server(args, workdir, out_file)
    try:
        asyncio.run(RUNNERS[path](port, count))
        # Let the server see the closes before it is told to stop.
        time.sleep(0.5)
    finally:
        stop_server(proc, log)
    total = total_instructions(out_file)
    if keep:
        shutil.copy(out_file, keep)
    return total


def measure(args, path, keep):
    small, large = COUNTS[path]
    with tempfile.TemporaryDirectory(prefix="wsrelay-instr-") as workdir:
        a = measure_once(args, path, small, workdir, keep)
        b = measure_once(args, path, large, workdir, keep)
    per = FANOUT_SUBSCRIBERS if path == "fanout" else 1
    return {"instructions": round((b - a) / ((large - small) * per)), "unit": UNITS[path],
            "messages": [small, large], "totals": [a, b]}


def start_upstream(args):
    proc = subprocess.Popen([args.bench, "serve-echo", "--listen-port", "0"], stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    m = re.search(r":(\d+)/", line)
    if not m:
        proc.kill()
        raise RuntimeError("serve-echo did not start: " + line)
    return proc, int(m.group(1))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--wsrelay", required=True)
    ap.add_argument("--bench", required=True, help="wsrelay-bench (its serve-echo is the relay's upstream)")
    mode = ap.add_mutually_exclusive_group(required=True)
    mode.add_argument("--record", metavar="FILE")
    mode.add_argument("--check", metavar="FILE")
    mode.add_argument("--print", action="store_true", help="measure and print only")
    ap.add_argument("--paths", default="heartbeat,fanout,relay")
    ap.add_argument("--keep", metavar="DIR", help="copy the callgrind output files here")
    args = ap.parse_args()
    if shutil.which("valgrind") is None:
        sys.exit("instructions.py: valgrind is not installed (make test-deps installs it)")
    paths = [p for p in args.paths.split(",") if p]
    for p in paths:
        if p not in RUNNERS:
            sys.exit("instructions.py: unknown path %s" % p)
    if args.keep:
        os.makedirs(args.keep, exist_ok=True)

    started = time.time()
    upstream, args.upstream_port = start_upstream(args)
    results = {}
    try:
        for p in paths:
            t = time.time()
            results[p] = measure(args, p, args.keep)
            print("%-10s %8d instructions per %s  (%.0f s)" % (p, results[p]["instructions"], results[p]["unit"],
                                                            time.time() - t), flush=True)
    finally:
        upstream.terminate()
        upstream.wait()
    print("total %.0f s" % (time.time() - started))

    if args.record:
        recorded = {}
        if os.path.exists(args.record):
            with open(args.record) as f:
                recorded = json.load(f)
        recorded.setdefault("paths", {})
        recorded["about"] = ("Instructions the wsrelay server executes per message (valgrind --tool=callgrind, Ir, "
                             "difference of two runs; bench/instructions.py). make bench-smoke fails when a path "
                             "costs more than tolerance over its figure.")
        recorded["tolerance"] = TOLERANCE
        for p in paths:
            recorded["paths"][p] = {"instructions": results[p]["instructions"], "per": results[p]["unit"]}
        with open(args.record, "w") as f:
            json.dump(recorded, f, indent=2, sort_keys=True)
            f.write("\n")
        print("recorded in " + args.record)
        return 0
    if args.check:
        with open(args.check) as f:
            recorded = json.load(f)
        tolerance = recorded.get("tolerance", TOLERANCE)
        failed = []
        for p in paths:
            want = recorded["paths"].get(p, {}).get("instructions")
            got = results[p]["instructions"]
            if want is None:
                failed.append("%s: no recorded figure" % p)
                continue
            ratio = got / want
            verdict = "ok" if ratio <= 1 + tolerance else "TOO MANY"
            print("%-10s recorded %8d  now %8d  %+6.1f%%  %s" % (p, want, got, 100 * (ratio - 1), verdict))
            if ratio > 1 + tolerance:
                failed.append("%s: %d instructions per %s, %.1f%% over the recorded %d" % (
                    p, got, results[p]["unit"], 100 * (ratio - 1), want))
            elif ratio < 1 - tolerance:
                print("  (%s got cheaper: re-record with --record)" % p)
        if failed:
            print("bench-smoke FAILED:\n  " + "\n  ".join(failed))
            return 1
        print("bench-smoke ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
