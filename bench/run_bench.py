#!/usr/bin/env python3
"""make bench: every scenario against wsrelay and its peers, side by side.

Starts each server pinned to one core (BENCH_SERVER_CPU, default 0) and runs
wsrelay-bench pinned to the other (BENCH_GEN_CPU, default 1); each
measurement is a fresh server, a warm-up, then the measured window, repeated
BENCH_RUNS times (servers interleaved run by run). Prints the medians, the
spread and the ratios wsrelay/peer, and writes docs/benchmarks.md with a PNG
chart (gnuplot). Settings come from the environment (see SETTINGS below).
Loopback only; every server is stopped at the end, whatever happens.

BENCH_SCENARIOS picks the scenarios (default: all), e.g.
BENCH_SCENARIOS="history recovery" for the channel-memory ones only (wsrelay
alone: history off against history on, and the recovery storm). A partial run
still rewrites BENCH_OUT (docs/benchmarks.md): point it elsewhere for one.
BENCH_SCENARIOS="connect_backend backend_inflight": the ones where a script
calls a backend (relay.http.request; wsrelay alone, the backend on the
generator's core).
"""

import json
import os
import platform
import resource
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def env(name, default):
    return os.environ.get(name, str(default))


SETTINGS = {
    "BENCH_DURATION": env("BENCH_DURATION", 4),        # measured seconds per run
    "BENCH_WARMUP": env("BENCH_WARMUP", 1),            # seconds before measuring
    "BENCH_RUNS": env("BENCH_RUNS", 3),
    "BENCH_CONNS": env("BENCH_CONNS", 100),            # echo / latency / relay connections
    "BENCH_LAT_RATE": env("BENCH_LAT_RATE", 5000),     # latency and relay: msg/s in total
    "BENCH_FANOUT_SUBS": env("BENCH_FANOUT_SUBS", "100 1000 10000"),  # the targets: 1k and 10k
    "BENCH_FANOUT_WINDOW": env("BENCH_FANOUT_WINDOW", 8),
    "BENCH_IDLE_CONNS": env("BENCH_IDLE_CONNS", 10000),
    "BENCH_CHURN_RATE": env("BENCH_CHURN_RATE", 1000),
    "BENCH_CHURN_CONCURRENCY": env("BENCH_CHURN_CONCURRENCY", 32),
    "BENCH_HISTORY_SUBS": env("BENCH_HISTORY_SUBS", 1000),      # history on vs off: fan-out subscribers
    "BENCH_HISTORY_RATE": env("BENCH_HISTORY_RATE", 100),       # ... and the fixed-rate variant (below saturation)
    "BENCH_HISTORY_SIZE": env("BENCH_HISTORY_SIZE", 100),       # history_size of the bench channel when on
    "BENCH_RECOVERY_CLIENTS": env("BENCH_RECOVERY_CLIENTS", 1000),
    "BENCH_RECOVERY_MISSED": env("BENCH_RECOVERY_MISSED", 100),
    # connect_backend: connects/s through an on_open that POSTs to a local backend, then sends a welcome;
    # K concurrent connectors; backends: none (welcome at once), uvicorn (FastAPI), c (wsrelay-bench serve-http)
    "BENCH_CONNECT_CONCURRENCY": env("BENCH_CONNECT_CONCURRENCY", 32),
    "BENCH_CONNECT_BACKENDS": env("BENCH_CONNECT_BACKENDS", "none uvicorn c"),
    # backend_inflight: bystanders' heartbeat latency while N handlers wait on a backend that sleeps
    "BENCH_INFLIGHT_WAITERS": env("BENCH_INFLIGHT_WAITERS", 1000),
    "BENCH_INFLIGHT_SLEEP": env("BENCH_INFLIGHT_SLEEP", 10),        # s; longer than warm-up + window
    "BENCH_INFLIGHT_WARMUP": env("BENCH_INFLIGHT_WARMUP", 3),       # s for the waiters' requests to get in flight
    "BENCH_INFLIGHT_BYSTANDERS": env("BENCH_INFLIGHT_BYSTANDERS", 100),
    "BENCH_INFLIGHT_RATE": env("BENCH_INFLIGHT_RATE", 1000),        # bystanders' heartbeats/s in total
    "BENCH_INFLIGHT_BACKEND": env("BENCH_INFLIGHT_BACKEND", "uvicorn"),  # or c
    "BENCH_SCENARIOS": env("BENCH_SCENARIOS", "echo latency fanout relay idle churn history recovery "
                                              "connect_backend backend_inflight"),
    "BENCH_SERVER_CPU": env("BENCH_SERVER_CPU", 0),
    "BENCH_GEN_CPU": env("BENCH_GEN_CPU", 1),
    "BENCH_PROCS": env("BENCH_PROCS", 1),              # generator processes
    "BENCH_QUIET_WAIT": env("BENCH_QUIET_WAIT", 3),   # seconds to wait for an idle machine before a run
    "BENCH_OUT": env("BENCH_OUT", os.path.join(ROOT, "docs", "benchmarks.md")),
    "WSRELAY": env("WSRELAY", os.path.join(ROOT, "build", "wsrelay")),
    "BENCH_BUILD": env("BENCH_BUILD", os.path.join(ROOT, "build-bench")),
}
S = SETTINGS
DURATION = float(S["BENCH_DURATION"])
WARMUP = float(S["BENCH_WARMUP"])
RUNS = int(S["BENCH_RUNS"])
SCPU = str(S["BENCH_SERVER_CPU"])
GCPU = str(S["BENCH_GEN_CPU"])
BENCH = os.path.join(S["BENCH_BUILD"], "wsrelay-bench")
FLOOR = os.path.join(S["BENCH_BUILD"], "lws-floor")
NODE_DIR = os.path.join(ROOT, "bench", "node")
TMP = tempfile.mkdtemp(prefix="wsrelay-bench-")
LOG_DIR = os.path.join(S["BENCH_BUILD"], "logs")
os.makedirs(LOG_DIR, exist_ok=True)

PORTS = {"wsrelay": 7800, "upstream": 7801, "floor": 7810, "node": 7820, "nchan": 7830, "lws-test-server": 7840,
         "python": 7850, "backend": 7860}
SERVER_FD_LIMIT = 65536

problems = []      # what went wrong, for the report
commands = {}      # one wsrelay-bench command line per (scenario, server), for the report
quiet_log = []     # background CPU load seen before each run


def log(msg):
    print(msg, flush=True)


# ------------------------------------------------------------------ servers --

def _limits():
    try:
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        want = SERVER_FD_LIMIT if hard == resource.RLIM_INFINITY else min(SERVER_FD_LIMIT, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (SERVER_FD_LIMIT, SERVER_FD_LIMIT))
        except (ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    except (ValueError, OSError):
        pass
    os.setsid()


def wait_port(port, proc, timeout=15.0):
    end = time.time() + timeout
    while time.time() < end:
        if proc.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def port_taken(port):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.2)
        return probe.connect_ex(("127.0.0.1", port)) == 0


class Server:
    """One server process, pinned to the server core; `pid` is the one /proc is read for."""

    def __init__(self, name, argv, port, cwd=None, log_name=None, worker_child=False, cpu=None):
        self.name = name
        self.port = port
        self.backend = None  # a backend started for this server: stopped with it
        self.log_path = os.path.join(LOG_DIR, (log_name or name) + ".log")
        self.logf = open(self.log_path, "ab")
        self.logf.write(("\n=== %s: %s\n" % (time.strftime("%H:%M:%S"), " ".join(argv))).encode())
        self.logf.flush()
        if port_taken(port):
            # Someone else's server there would answer wait_port and be
            # measured in this one's place.
            self.logf.close()
            raise RuntimeError("port %d is already in use: cannot start %s" % (port, name))
        self.proc = subprocess.Popen(["taskset", "-c", cpu or SCPU] + argv, cwd=cwd, stdout=self.logf,
                                     stderr=subprocess.STDOUT, preexec_fn=_limits)
        if not wait_port(port, self.proc):
            self.stop()
            raise RuntimeError("%s did not start (see %s)" % (name, self.log_path))
        self.pid = self.proc.pid  # taskset execs the server: same pid
        if worker_child:  # nginx: measure the (only) worker, not the master
            self.pid = self._child(self.proc.pid)

    @staticmethod
    def _child(pid, timeout=5.0):
        end = time.time() + timeout
        while time.time() < end:
            try:
                with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
                    kids = f.read().split()
                if kids:
                    return int(kids[0])
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("no worker process under pid %d" % pid)

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        if self.backend is not None:  # after the server, so that nothing waits on it any more
            try:
                return self._stop()
            finally:
                self.backend.stop_backend()
        return self._stop()

    def stop_backend(self):
        """A backend (test rig, not measured): SIGTERM, then SIGKILL after 3 s (uvicorn waits for the
        requests still sleeping); its exit status is not a finding."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.logf.close()

    def _stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.logf.close()
        return self.proc.returncode


def wsrelay_config(history=False, backend=None):
    """The bench config; history: the bench channel keeps BENCH_HISTORY_SIZE messages (channel_options);
    backend (a URL, or "" for none): the endpoints /connect and /wait whose scripts call it."""
    path = os.path.join(TMP, "wsrelay-history.json" if history else
                        "wsrelay-backend.json" if backend is not None else "wsrelay.json")
    cfg = {
        "listen": {"host": "127.0.0.1", "port": PORTS["wsrelay"]},
        "log_level": "warn",
        "limits": {"messages_per_second": 0, "max_connections_per_ip": 0, "max_connections": 0},
        "endpoints": [
            {"path": "/ws"},
            {"path": "/relay", "script": os.path.join(ROOT, "bench", "conf", "relay.lua"),
             "upstream": {"url": "ws://127.0.0.1:%d/" % PORTS["upstream"]}},
        ],
    }
    if history:
        cfg["channel_options"] = [{"match": "bench", "history_size": int(S["BENCH_HISTORY_SIZE"])}]
    if backend is not None:
        # Room for every waiter's request (limits.http_requests: 256 by default).
        cfg["limits"]["http_requests"] = max(256, 2 * int(S["BENCH_INFLIGHT_WAITERS"]))
        for name, path_ in (("connect_backend.lua", "/connect"), ("backend_wait.lua", "/wait")):
            with open(os.path.join(ROOT, "bench", "conf", name)) as f:
                lua = f.read().replace("__BACKEND__", backend).replace("__SLEEP__", str(S["BENCH_INFLIGHT_SLEEP"]))
            script = os.path.join(TMP, name)
            with open(script, "w") as f:
                f.write(lua)
            cfg["endpoints"].append({"path": path_, "script": script})
    with open(path, "w") as f:
        json.dump(cfg, f, indent=1)
    return path


def start(kind, mode="echo", history=False):
    """kind: wsrelay | floor | node | python | nchan | lws-test-server; mode: echo | broadcast;
    history (wsrelay): the bench channel keeps history."""
    if kind == "wsrelay":
        return Server("wsrelay", [S["WSRELAY"], "--config", wsrelay_config(history)], PORTS["wsrelay"],
                      log_name="wsrelay-history" if history else None)
    if kind == "floor":
        return Server("floor", [FLOOR, "--port", str(PORTS["floor"]), "--mode", mode], PORTS["floor"],
                      log_name="lws-floor")
    if kind == "node":
        script = os.path.join(NODE_DIR, "echo.js" if mode == "echo" else "broadcast.js")
        return Server("node", ["node", script, str(PORTS["node"])], PORTS["node"], log_name="node-ws")
    if kind == "python":
        return Server("python", ["/usr/bin/python3", os.path.join(ROOT, "bench", "python", "echo.py"),
                                 str(PORTS["python"])], PORTS["python"], log_name="python-websockets")
    if kind == "nchan":
        d = os.path.join(TMP, "nginx")
        os.makedirs(os.path.join(d, "tmp"), exist_ok=True)
        with open(os.path.join(ROOT, "bench", "conf", "nchan.conf")) as f:
            conf = f.read().replace("__PORT__", str(PORTS["nchan"]))
        with open(os.path.join(d, "nginx.conf"), "w") as f:
            f.write(conf)
        return Server("nchan", ["nginx", "-p", d + "/", "-c", os.path.join(d, "nginx.conf"), "-e", "stderr"],
                      PORTS["nchan"], log_name="nginx-nchan", worker_child=True)
    if kind == "lws-test-server":
        return Server("lws-test-server", ["libwebsockets-test-server", "--port", str(PORTS["lws-test-server"])],
                      PORTS["lws-test-server"], cwd=TMP)
    raise ValueError(kind)


BACKEND_NAMES = {"none": "no backend call", "uvicorn": "FastAPI under uvicorn", "c": "C (serve-http)"}


def have_uvicorn():
    """Debian's python3-fastapi and uvicorn (the test suite's packages; make bench does not install them)."""
    return subprocess.run(["/usr/bin/python3", "-c", "import fastapi, uvicorn"], capture_output=True).returncode == 0


def start_backend(kind):
    """The backend a script calls, on the generator's core (test rig, like the relay's upstream):
    uvicorn: bench/python/backend.py (FastAPI) under Debian's uvicorn, one process;
    c: wsrelay-bench serve-http (epoll, no framework)."""
    port = PORTS["backend"]
    if kind == "uvicorn":
        argv = ["/usr/bin/python3", "-m", "uvicorn", "backend:app", "--app-dir", os.path.join(ROOT, "bench", "python"),
                "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning", "--no-access-log",
                "--backlog", "4096"]
        return Server("backend", argv, port, log_name="backend-uvicorn", cpu=GCPU)
    if kind == "c":
        return Server("backend", [BENCH, "serve-http", "--listen-port", str(port)], port, log_name="backend-c",
                      cpu=GCPU)
    raise ValueError(kind)


def start_with_backend(kind):
    """wsrelay with the /connect and /wait endpoints calling a fresh backend of `kind` (none: no call)."""
    backend = None if kind == "none" else start_backend(kind)
    try:
        url_ = "" if backend is None else "http://127.0.0.1:%d" % PORTS["backend"]
        srv = Server("wsrelay", [S["WSRELAY"], "--config", wsrelay_config(backend=url_)], PORTS["wsrelay"],
                     log_name="wsrelay-backend")
    except Exception:
        if backend is not None:
            backend.stop_backend()
        raise
    srv.backend = backend
    return srv


class InflightSampler:
    """Reads wsrelay_http_requests_in_flight from the server's /metrics every 0.5 s while a run lasts,
    with time.monotonic() (CLOCK_MONOTONIC, wsrelay-bench's clock): the samples inside its window say
    how many requests were in flight during the measurement."""

    def __init__(self, port):
        self.url = "http://127.0.0.1:%d/metrics" % port
        self.samples = []
        self.errors = 0
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self.done.is_set():
            t = time.monotonic()
            try:
                with urllib.request.urlopen(self.url, timeout=2) as r:
                    for line in r.read().decode().splitlines():
                        if line.startswith("wsrelay_http_requests_in_flight "):
                            self.samples.append((t, float(line.split()[1])))
            except Exception:
                self.errors += 1
            self.done.wait(0.5)

    def start(self):
        self.thread.start()
        return self

    def stop(self, res):
        self.done.set()
        self.thread.join(timeout=5)
        a, b = res.get("window_mono_s", [0, 0])
        inside = [v for t, v in self.samples if a <= t <= b]
        res["inflight"] = {"samples": len(inside), "min": min(inside) if inside else None,
                           "max": max(inside) if inside else None, "errors": self.errors}


# ---------------------------------------------------------------- the runs --

def cpu_busy(interval=0.5):
    """Share of both cores busy over `interval` (the machine may be shared)."""
    def sample():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        idle = v[3] + v[4]
        return sum(v[:8]), idle
    t1, i1 = sample()
    time.sleep(interval)
    t2, i2 = sample()
    return 0.0 if t2 == t1 else 1.0 - (i2 - i1) / (t2 - t1)


def cpu_ticks():
    """(steal, all) clock ticks of the machine so far (/proc/stat's first line)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return v[7] if len(v) > 7 else 0, sum(v[:8])


def wait_quiet():
    """Wait (up to BENCH_QUIET_WAIT s) until nothing else loads the machine."""
    end = time.time() + float(S["BENCH_QUIET_WAIT"])
    busy = cpu_busy()
    while busy > 0.10 and time.time() < end:
        time.sleep(1)
        busy = cpu_busy()
    quiet_log.append(busy)
    return busy


def bench(scenario, args, server=None, key=None):
    """Run wsrelay-bench once, pinned to the generator core; its JSON result."""
    argv = [BENCH, scenario, "--duration", str(DURATION), "--warmup", str(WARMUP), "--procs", str(S["BENCH_PROCS"]),
            "--json"] + [str(a) for a in args]
    backend = getattr(server, "backend", None)
    if backend is not None:
        argv += ["--backend-pid", str(backend.pid)]
    if server is not None:
        argv += ["--server-pid", str(server.pid)]
    if key and key not in commands:
        shown = argv[:-2] if server is not None else argv
        if backend is not None:
            shown = shown[:-2]
        shown = [os.path.relpath(a, ROOT) if a.startswith(ROOT) else a for a in shown]
        commands[key] = "taskset -c %s %s%s%s" % (GCPU, " ".join(shlex.quote(a) for a in shown),
                                                 " --backend-pid $BACKEND_PID" if backend is not None else "",
                                                 " --server-pid $SERVER_PID" if server else "")
    p = subprocess.run(["taskset", "-c", GCPU] + argv, capture_output=True, text=True,
                       timeout=DURATION + WARMUP + 180)
    if p.returncode != 0:
        raise RuntimeError("wsrelay-bench failed (%d): %s" % (p.returncode, p.stderr.strip()))
    return json.loads(p.stdout.strip().splitlines()[-1])


results = {}   # (scenario, variant, server) -> [run results]


def record(scenario, variant, server_name, res, srv):
    results.setdefault((scenario, variant, server_name), []).append(res)
    problems_here = {k: res.get(k, 0) for k in
                     ("connect_fail", "handshake_fail", "peer_closed", "error_replies", "cycle_fail", "lost")}
    rec = res.get("recovery")
    if rec:
        problems_here.update({"recovered_false": rec["not_recovered"], "out_of_order": rec["out_of_order"],
                              "extra": rec["extra"], "missing": rec["missing"],
                              "incomplete_clients": rec["clients"] - rec["complete"]})
    w = res.get("waiters")
    if w:
        problems_here.update({"waiters_not_ready": w["conns"] - w["ready"], "waiter_errors": w["errors"],
                              "waiters_lost": w["lost"]})
        inf = res.get("inflight")
        if w["sent"] and inf is not None:
            if not inf["samples"]:
                problems_here["inflight_unsampled"] = 1
            elif inf["min"] < w["conns"]:
                problems_here["inflight_min_below_waiters"] = inf["min"]
        if w["replies_in_window"]:  # the sleep should outlast warm-up + window
            problems_here["waiter_answers_in_window"] = w["replies_in_window"]
    bad = {k: v for k, v in problems_here.items() if v}
    if bad:
        problems.append("%s %s %s: %s" % (scenario, variant, server_name,
                                          ", ".join("%s=%s" % kv for kv in bad.items())))
    if srv is not None and not srv.alive():
        problems.append("%s %s %s: the server died (exit %s, log %s)" % (scenario, variant, server_name,
                                                                          srv.proc.returncode, srv.log_path))
    if res["generator"]["saturated"]:
        problems.append("%s %s %s: generator saturated (%.0f%% of a core)" % (
            scenario, variant, server_name, 100 * res["generator"]["cpu_max_frac"]))


def run_matrix(scenario, variant, entries, tool_scenario=None, sampler=None):
    """entries: [(server_name, start_fn, args)]; interleaved over RUNS runs, a fresh server each time.
    tool_scenario: wsrelay-bench's scenario when it is not named like the report's (history: fanout).
    sampler(server) -> an object with start() and stop(result), watching the server during the run."""
    for run in range(RUNS):
        for name, start_fn, args in entries:
            busy = wait_quiet()
            srv = None
            try:
                srv = start_fn()
                watch = sampler(srv).start() if sampler else None
                try:
                    res = bench(tool_scenario or scenario, args, srv, key=(scenario, variant, name))
                finally:
                    if watch is not None:
                        watch.done.set()
                if watch is not None:
                    watch.stop(res)
                res["background_busy"] = busy
                record(scenario, variant, name, res, srv)
                log("  %-8s %-12s %-16s run %d: %s" % (scenario, variant, name, run + 1, summary(scenario, res)))
            except Exception as e:  # a failed run is reported, the others go on
                problems.append("%s %s %s run %d: %s" % (scenario, variant, name, run + 1, e))
                log("  %-8s %-12s %-16s run %d: FAILED: %s" % (scenario, variant, name, run + 1, e))
            finally:
                if srv is not None:
                    code = srv.stop()
                    if code not in (0, -15, 143, None):
                        problems.append("%s %s %s: server exit status %s at stop (log %s)" % (
                            scenario, variant, name, code, srv.log_path))


def summary(scenario, r):
    lat = r["latency"]
    if scenario == "idle":
        return "%d ready in %.2f s, %.2f KiB/conn" % (r["conns_ready"], r["establish_s"], r["server"]["kib_per_conn"])
    if scenario == "relay":
        return "p99 %.0f us (direct %.0f us, added %.0f us)" % (lat["p99_us"], r["baseline"]["latency"]["p99_us"],
                                                               r["added_us"]["p99"])
    if scenario == "recovery":
        rec = r["recovery"]
        return "%d/%d complete in %.3f s, server CPU %.3f s, RSS %d -> peak %d KiB, gen %.0f%%" % (
            rec["complete"], rec["clients"], rec["storm_s"], rec["server_cpu_schedstat_s"],
            rec["server_rss_before_kib"], max(rec["server_rss_peak_sampled_kib"], rec["server_hwm_kib"]),
            100 * r["generator"]["cpu_max_frac"])
    if scenario == "connect_backend":
        b = r.get("backend", {})
        return "%.0f connects/s, fail %d, connect->welcome p50 %.0f us p99 %.0f us, server CPU %.2f s, backend CPU " \
               "%s, gen %.0f%%" % (r["per_s"], r["cycle_fail"], r["setup"]["p50_us"], r["setup"]["p99_us"],
                                   r["server"]["cpu_s"], "%.2f s" % b["cpu_s"] if b.get("cpu_s", -1) >= 0 else "-",
                                   100 * r["generator"]["cpu_max_frac"])
    if scenario == "backend_inflight":
        w = r.get("waiters", {})
        inf = r.get("inflight", {})
        return "heartbeat p50 %.0f us p99 %.0f us max %.0f us (%d answered, lost %d); in flight %s-%s; waiters " \
               "%s ready, %s answered in the window; server CPU %.2f s" % (
                   lat["p50_us"], lat["p99_us"], lat["max_us"], r["messages"], r["lost"], fmt_opt(inf.get("min")),
                   fmt_opt(inf.get("max")), w.get("ready", "-"), w.get("replies_in_window", "-"), r["server"]["cpu_s"])
    if scenario == "churn":
        return "%.0f cycles/s, fail %d, RSS %d -> %d KiB, gen %.0f%%" % (
            r["per_s"], r["cycle_fail"], r["server"]["rss_before_kib"], r["server"]["rss_after_kib"],
            100 * r["generator"]["cpu_max_frac"])
    return "%.0f/s  p50 %.0f us  p99 %.0f us  server cpu %.2f s (%.0f per cpu-s)  gen %.0f%%" % (
        r["per_s"], lat["p50_us"], lat["p99_us"], r["server"]["cpu_s"], r["server"]["per_cpu_s"],
        100 * r["generator"]["cpu_max_frac"])


def url(kind, path="/"):
    return "ws://127.0.0.1:%d%s" % (PORTS[kind], path)


def scenario_echo():
    conns = S["BENCH_CONNS"]
    run_matrix("echo", "%s conns" % conns, [
        ("wsrelay", lambda: start("wsrelay"), ["--url", url("wsrelay", "/ws"), "--protocol", "standard", "--conns", conns]),
        ("lws floor", lambda: start("floor"), ["--url", url("floor"), "--protocol", "plain", "--conns", conns]),
        ("node ws", lambda: start("node"), ["--url", url("node"), "--protocol", "plain", "--conns", conns]),
        ("python websockets", lambda: start("python"),
         ["--url", url("python"), "--protocol", "plain", "--conns", conns]),
    ])


def scenario_latency():
    conns, rate = S["BENCH_CONNS"], S["BENCH_LAT_RATE"]
    v = "%s msg/s" % rate
    common = ["--conns", conns, "--rate", rate]
    run_matrix("latency", v, [
        ("wsrelay", lambda: start("wsrelay"), ["--url", url("wsrelay", "/ws"), "--protocol", "standard"] + common),
        ("lws floor", lambda: start("floor"), ["--url", url("floor"), "--protocol", "plain"] + common),
        ("node ws", lambda: start("node"), ["--url", url("node"), "--protocol", "plain"] + common),
    ])


def scenario_fanout():
    w = S["BENCH_FANOUT_WINDOW"]
    for subs in S["BENCH_FANOUT_SUBS"].split():
        common = ["--conns", subs, "--window", w]
        entries = [
            ("wsrelay", lambda: start("wsrelay"), ["--url", url("wsrelay", "/ws"), "--protocol", "standard"] + common),
            ("lws floor", lambda: start("floor", "broadcast"), ["--url", url("floor"), "--protocol", "plain"] + common),
            ("node ws", lambda: start("node", "broadcast"), ["--url", url("node"), "--protocol", "plain"] + common),
        ]
        if shutil.which("nginx") and os.path.exists("/usr/lib/nginx/modules/ngx_nchan_module.so"):
            entries.append(("nginx nchan", lambda: start("nchan"),
                            ["--url", url("nchan", "/sub/bench"), "--pub-url", url("nchan", "/pub/bench"),
                             "--protocol", "plain"] + common))
        else:
            problems.append("fanout: nginx with libnginx-mod-nchan is not installed: nchan skipped")
        run_matrix("fanout", "%s subscribers" % subs, entries)


def scenario_relay():
    conns, rate = S["BENCH_CONNS"], S["BENCH_LAT_RATE"]
    up_log = open(os.path.join(LOG_DIR, "upstream-echo.log"), "ab")
    # The upstream is part of the test rig, not the server under test: it runs on the generator's core.
    up = subprocess.Popen(["taskset", "-c", GCPU, BENCH, "serve-echo", "--listen-port", str(PORTS["upstream"])],
                          stdout=up_log, stderr=subprocess.STDOUT, preexec_fn=_limits)
    try:
        if not wait_port(PORTS["upstream"], up):
            raise RuntimeError("the upstream echo server did not start")
        run_matrix("relay", "%s msg/s, %s clients" % (rate, conns), [
            ("wsrelay", lambda: start("wsrelay"),
             ["--url", url("wsrelay", "/relay"), "--upstream-url", url("upstream"), "--protocol", "plain",
              "--conns", conns, "--rate", rate]),
        ])
    finally:
        up.send_signal(signal.SIGTERM)
        try:
            up.wait(timeout=5)
        except subprocess.TimeoutExpired:
            up.kill()
        up_log.close()


def scenario_idle():
    n = S["BENCH_IDLE_CONNS"]
    common = ["--conns", n, "--warmup", "2", "--duration", "0"]
    run_matrix("idle", "%s conns" % n, [
        ("wsrelay", lambda: start("wsrelay"), ["--url", url("wsrelay", "/ws"), "--protocol", "standard"] + common),
        ("lws floor", lambda: start("floor"), ["--url", url("floor"), "--protocol", "plain"] + common),
        ("node ws", lambda: start("node"), ["--url", url("node"), "--protocol", "plain"] + common),
        ("lws test server", lambda: start("lws-test-server"),
         ["--url", url("lws-test-server"), "--protocol", "plain", "--subprotocol", "lws-mirror-protocol"] + common),
    ])


def scenario_churn():
    rate, conc = S["BENCH_CHURN_RATE"], S["BENCH_CHURN_CONCURRENCY"]
    run_matrix("churn", "%s/s" % rate, [
        ("wsrelay", lambda: start("wsrelay"),
         ["--url", url("wsrelay", "/ws"), "--protocol", "standard", "--rate", rate, "--conns", 1]),
    ])
    common = ["--rate", 0, "--conns", conc]
    run_matrix("churn", "max (%s at once)" % conc, [
        ("wsrelay", lambda: start("wsrelay"), ["--url", url("wsrelay", "/ws"), "--protocol", "standard"] + common),
        ("lws floor", lambda: start("floor"), ["--url", url("floor"), "--protocol", "plain"] + common),
        ("node ws", lambda: start("node"), ["--url", url("node"), "--protocol", "plain"] + common),
    ])


HISTORY_OFF, HISTORY_ON = "wsrelay (history off)", "wsrelay (history on)"


def scenario_history():
    """Fan-out with the bench channel keeping history (channel_options, history_size BENCH_HISTORY_SIZE) against
    the same without: the same message, closed loop (window) and at a fixed publish rate."""
    subs, w, rate = S["BENCH_HISTORY_SUBS"], S["BENCH_FANOUT_WINDOW"], S["BENCH_HISTORY_RATE"]
    common = ["--url", url("wsrelay", "/ws"), "--protocol", "standard", "--conns", subs, "--window", w]
    for variant, extra in (("%s subscribers, window %s" % (subs, w), []),
                           ("%s subscribers, %s publishes/s" % (subs, rate), ["--rate", rate])):
        run_matrix("history", variant, [
            (HISTORY_OFF, lambda: start("wsrelay"), common + extra),
            (HISTORY_ON, lambda: start("wsrelay", history=True), common + extra),
        ], tool_scenario="fanout")


def scenario_recovery():
    """The recovery storm: BENCH_RECOVERY_CLIENTS subscribers of a history channel leave, BENCH_RECOVERY_MISSED
    messages are published, all come back at once with since (after one unmeasured warm-up storm)."""
    n, missed = S["BENCH_RECOVERY_CLIENTS"], S["BENCH_RECOVERY_MISSED"]
    run_matrix("recovery", "%s clients, %s missed" % (n, missed), [
        (HISTORY_ON, lambda: start("wsrelay", history=True),
         ["--url", url("wsrelay", "/ws"), "--protocol", "standard", "--conns", n, "--missed", missed,
          "--connect-concurrency", n]),
    ])


def scenario_connect_backend():
    """Connects per second through an on_open that waits on a local backend (POST /ws/connect, JSON) and then
    sends its welcome: churn cycles (connect, handshake, the welcome, close) with K at once, against a fresh
    server and a fresh backend per run; the same without the backend call as the baseline."""
    conc = S["BENCH_CONNECT_CONCURRENCY"]
    args = ["--url", url("wsrelay", "/connect"), "--protocol", "plain", "--welcome", "welcome ", "--rate", 0,
            "--conns", conc]
    entries = []
    for kind in S["BENCH_CONNECT_BACKENDS"].split():
        if kind not in BACKEND_NAMES:
            sys.exit("BENCH_CONNECT_BACKENDS: none, uvicorn or c (got %s)" % kind)
        if kind == "uvicorn" and not have_uvicorn():
            problems.append("connect_backend: python3-fastapi and uvicorn are not installed: the uvicorn backend "
                            "skipped")
            continue
        entries.append(("wsrelay, " + BACKEND_NAMES[kind], lambda kind=kind: start_with_backend(kind), args))
    run_matrix("connect_backend", "%s at once" % conc, entries, tool_scenario="churn")


INFLIGHT_VARIANTS = ("no load", "%s idle sessions", "%s requests in flight")


def scenario_backend_inflight():
    """Bystanders' heartbeats (the standard protocol, open loop) on a server where N sessions each have a
    handler waiting on a backend that sleeps (GET /sleep?s=BENCH_INFLIGHT_SLEEP): against the same bystanders
    with no other session, and with the N sessions connected but silent. The requests go out at the start of
    the warm-up; /metrics is sampled during the run to show how many were in flight in the window."""
    n, kind = S["BENCH_INFLIGHT_WAITERS"], S["BENCH_INFLIGHT_BACKEND"]
    if kind not in ("uvicorn", "c"):
        sys.exit("BENCH_INFLIGHT_BACKEND: uvicorn or c (got %s)" % kind)
    if kind == "uvicorn" and not have_uvicorn():
        problems.append("backend_inflight: python3-fastapi and uvicorn are not installed: the C backend instead")
        kind = "c"
    common = ["--url", url("wsrelay", "/ws"), "--protocol", "standard", "--conns", S["BENCH_INFLIGHT_BYSTANDERS"],
              "--rate", S["BENCH_INFLIGHT_RATE"], "--warmup", S["BENCH_INFLIGHT_WARMUP"]]
    waiters = ["--waiters", n, "--waiter-url", url("wsrelay", "/wait")]
    start_fn = lambda: start_with_backend(kind)  # noqa: E731
    no_load, idle, loaded = (v % n if "%" in v else v for v in INFLIGHT_VARIANTS)
    # One matrix, so that the three loads interleave run by run: the load is in the "server" column.
    run_matrix("backend_inflight", "%s bystanders, %s heartbeats/s; backend %s" % (
        S["BENCH_INFLIGHT_BYSTANDERS"], S["BENCH_INFLIGHT_RATE"], BACKEND_NAMES[kind]), [
        (no_load, start_fn, common),
        (idle, start_fn, common + waiters + ["--waiter-message", ""]),
        (loaded, start_fn, common + waiters),
    ], tool_scenario="latency", sampler=lambda srv: InflightSampler(srv.port))


# ------------------------------------------------------------------ report --

def metric(scenario, r):
    """The headline number of a run, and whether higher is better."""
    if scenario == "idle":
        return r["server"]["kib_per_conn"], False
    if scenario == "latency":
        return r["latency"]["p99_us"], False
    if scenario == "relay":
        return r["added_us"]["p99"], False
    if scenario == "recovery":
        return r["recovery"]["storm_s"], False
    if scenario == "backend_inflight":
        return r["latency"]["p99_us"], False
    return r["per_s"], True


UNITS = {"echo": "msg/s", "latency": "p99 µs", "fanout": "deliveries/s", "relay": "added p99 µs",
         "idle": "KiB/conn", "churn": "cycles/s", "history": "deliveries/s", "recovery": "s until all recovered",
         "connect_backend": "connects/s", "backend_inflight": "heartbeat p99 µs"}


def stats(values):
    med = statistics.median(values)
    spread = (max(values) - min(values)) / med * 100 if med else 0.0
    return med, min(values), max(values), spread


def fmt_opt(v):
    return "-" if v is None else "%.0f" % v


def fmt(v):
    if abs(v) >= 1000:
        return "{:,.0f}".format(v)
    if abs(v) >= 10:
        return "%.0f" % v
    return "%.2f" % v


def med_of(runs, f):
    vals = [f(r) for r in runs]
    return statistics.median(vals) if vals else 0.0


def build_rows():
    rows = []
    for (scenario, variant, server), runs in results.items():
        vals = [metric(scenario, r)[0] for r in runs]
        med, lo, hi, spread = stats(vals)
        cpu = med_of(runs, lambda r: r["server"]["cpu_s"])
        per_cpu = med_of(runs, lambda r: r["server"]["per_cpu_s"])
        row = {
            "scenario": scenario, "variant": variant, "server": server, "runs": len(runs), "median": med,
            "min": lo, "max": hi, "spread_pct": spread, "unit": UNITS[scenario],
            "higher_better": metric(scenario, runs[0])[1],
            "p50_us": med_of(runs, lambda r: r["latency"]["p50_us"]),
            "p99_us": med_of(runs, lambda r: r["latency"]["p99_us"]),
            "p999_us": med_of(runs, lambda r: r["latency"]["p999_us"]),
            "max_us": med_of(runs, lambda r: r["latency"]["max_us"]),
            "server_cpu_s": cpu, "per_cpu_s": per_cpu,
            # µs of server CPU per message, in user space and in the kernel
            # (utime / stime; older wsrelay-bench output has no sys_s)
            "user_us": med_of(runs, lambda r: 1e6 * (r["server"]["cpu_s"] - r["server"].get("sys_s", 0))
                              / max(r["messages"], 1)),
            "kernel_us": med_of(runs, lambda r: 1e6 * r["server"].get("sys_s", 0) / max(r["messages"], 1)),
            "gen_cpu_pct": 100 * max(r["generator"]["cpu_max_frac"] for r in runs),
            "background_busy_pct": 100 * max(r.get("background_busy", 0) for r in runs),
        }
        if scenario == "idle":
            row["establish_s"] = med_of(runs, lambda r: r["establish_s"])
            row["ready"] = min(r["conns_ready"] for r in runs)
        if scenario == "churn":
            row["fail"] = sum(r["cycle_fail"] for r in runs)
            row["rss"] = "%d → %d" % (runs[-1]["server"]["rss_before_kib"], runs[-1]["server"]["rss_after_kib"])
            row["rss_growth_pct"] = max(
                100.0 * (r["server"]["rss_after_kib"] - r["server"]["rss_before_kib"]) / r["server"]["rss_before_kib"]
                for r in runs if r["server"]["rss_before_kib"] > 0) if any(
                r["server"]["rss_before_kib"] > 0 for r in runs) else 0.0
            row["setup_p99_us"] = med_of(runs, lambda r: r["setup"]["p99_us"])
        if scenario == "connect_backend":
            row["fail"] = sum(r["cycle_fail"] + r["error_replies"] for r in runs)
            row["setup_p50_us"] = med_of(runs, lambda r: r["setup"]["p50_us"])
            row["setup_p99_us"] = med_of(runs, lambda r: r["setup"]["p99_us"])
            row["window_s"] = med_of(runs, lambda r: r["window_s"])
            row["server_share"] = med_of(runs, lambda r: r["server"]["cpu_s"] / r["window_s"] if r["window_s"] else 0)
            have_b = [r for r in runs if r.get("backend", {}).get("cpu_s", -1) >= 0]
            row["backend_cpu_s"] = med_of(have_b, lambda r: r["backend"]["cpu_s"]) if have_b else None
            # the generator's core holds the generator and the backend: full, it is the bottleneck
            row["rig_share"] = med_of(runs, lambda r: (r["generator"]["cpu_s"] + max(r.get("backend", {}).get(
                "cpu_s", -1), 0)) / r["window_s"] if r["window_s"] else 0)
            row["backend_us_per_connect"] = (1e6 * row["backend_cpu_s"] / (row["median"] * row["window_s"])
                                             if row["backend_cpu_s"] and row["median"] else None)
            row["server_us_per_connect"] = 1e6 / row["per_cpu_s"] if row["per_cpu_s"] else None
        if scenario == "backend_inflight":
            row["p99_runs"] = [r["latency"]["p99_us"] for r in runs]
            row["answered"] = med_of(runs, lambda r: r["messages"])
            row["lost"] = sum(r["lost"] for r in runs)
            infl = [r["inflight"] for r in runs if r.get("inflight", {}).get("samples")]
            row["inflight_min"] = min(x["min"] for x in infl) if infl else None
            row["inflight_max"] = max(x["max"] for x in infl) if infl else None
            row["waiter_replies_in_window"] = sum(r.get("waiters", {}).get("replies_in_window", 0) for r in runs)
            have_b = [r for r in runs if r.get("backend", {}).get("cpu_s", -1) >= 0]
            row["backend_cpu_s"] = med_of(have_b, lambda r: r["backend"]["cpu_s"]) if have_b else None
        if scenario == "relay":
            row["direct_p99_us"] = med_of(runs, lambda r: r["baseline"]["latency"]["p99_us"])
            row["relay_p99_us"] = row["p99_us"]
        if scenario == "recovery":
            rec = [r["recovery"] for r in runs]
            row["clients"] = rec[0]["clients"]
            row["missed"] = rec[0]["missed"]
            row["complete_min"] = min(x["complete"] for x in rec)
            row["server_cpu_s"] = med_of(rec, lambda x: x["server_cpu_schedstat_s"])
            row["server_cpu_min"] = min(x["server_cpu_schedstat_s"] for x in rec)
            row["server_cpu_max"] = max(x["server_cpu_schedstat_s"] for x in rec)
            row["rss_before"] = med_of(rec, lambda x: x["server_rss_before_kib"])
            row["rss_peak"] = med_of(rec, lambda x: max(x["server_rss_peak_sampled_kib"], x["server_hwm_kib"]))
            row["rss_peak_max"] = max(max(x["server_rss_peak_sampled_kib"], x["server_hwm_kib"]) for x in rec)
            row["hwm_reset"] = all(x["hwm_reset"] for x in rec)
            row["subscribed_s"] = med_of(rec, lambda x: x["subscribed_s"])
            row["per_cpu_s"] = med_of(runs, lambda r: r["messages"] / r["recovery"]["server_cpu_schedstat_s"]
                                      if r["recovery"]["server_cpu_schedstat_s"] > 0 else 0.0)
        rows.append(row)
    return rows


def time_split_section(rows):
    """Server CPU per message, split into user space and the kernel: what a
    server adds on top of the syscalls every server pays."""
    split = [r for r in rows if r["scenario"] in ("echo", "fanout", "history") and r["per_cpu_s"]]
    if not split:
        return []
    L = ["### Where the server's time goes\n",
         "Server CPU per message (fan-out: per delivery), medians, from utime and stime in `/proc/<pid>/stat` "
         "over the measured window (clock ticks: a few per cent either way). The kernel part is the sockets "
         "(recv, send, poll, wake-ups); the user part is the server's own code and its libraries.\n",
         "| scenario | load | server | user µs | kernel µs | total µs |", "|---|---|---|---:|---:|---:|"]
    for r in split:
        L.append("| %s | %s | %s | %.2f | %.2f | %.2f |" % (r["scenario"], r["variant"], r["server"], r["user_us"],
                                                          r["kernel_us"], r["user_us"] + r["kernel_us"]))
    L.append("")
    return L


def ratios(rows):
    out = []
    groups = {}
    for r in rows:
        groups.setdefault((r["scenario"], r["variant"]), []).append(r)
    for (scenario, variant), rs in groups.items():
        if scenario in ("history", "recovery", "connect_backend", "backend_inflight"):  # wsrelay against itself
            continue
        mine = [r for r in rs if r["server"] == "wsrelay"]
        if not mine or mine[0]["median"] == 0:
            continue
        for peer in rs:
            if peer["server"] == "wsrelay" or peer["median"] == 0:
                continue
            per_cpu = None
            if mine[0]["higher_better"] and mine[0]["per_cpu_s"] and peer["per_cpu_s"]:
                per_cpu = mine[0]["per_cpu_s"] / peer["per_cpu_s"]
            out.append({"scenario": scenario, "variant": variant, "peer": peer["server"],
                        "ratio": mine[0]["median"] / peer["median"], "unit": mine[0]["unit"],
                        "higher_better": mine[0]["higher_better"], "per_cpu_ratio": per_cpu})
    return out


HISTORY_GOAL = 0.90  # history on: at least 90 % of the deliveries per server CPU-second of off


def history_comparison(rows):
    """[(variant, off row, on row, on/off of the medians per server CPU-second, [on/off run by run])]"""
    out = []
    for r in rows:
        if r["scenario"] != "history" or r["server"] != HISTORY_OFF:
            continue
        on = [q for q in rows if q["scenario"] == "history" and q["variant"] == r["variant"] and q["server"] == HISTORY_ON]
        if not on or not r["per_cpu_s"]:
            continue
        offs = results.get(("history", r["variant"], HISTORY_OFF), [])
        ons = results.get(("history", r["variant"], HISTORY_ON), [])
        # Runs are interleaved (off, on, off, on, ...): pair them in order. A failed run shifts the pairs.
        rounds = [b["server"]["per_cpu_s"] / a["server"]["per_cpu_s"] for a, b in zip(offs, ons)
                  if a["server"]["per_cpu_s"] > 0]
        out.append((r["variant"], r, on[0], on[0]["per_cpu_s"] / r["per_cpu_s"], rounds))
    return out


def channel_memory_section(rows):
    """The history and recovery scenarios: wsrelay against itself, so not in the ratios table."""
    hist = history_comparison(rows)
    rec = [r for r in rows if r["scenario"] == "recovery"]
    if not hist and not rec:
        return []
    L = ["## Channel memory: history on vs off, and the recovery storm\n"]
    if hist:
        L.append("Fan-out (one publisher, the standard protocol's chat, the same message) to the bench channel on a "
                 "server whose config keeps its history (`\"channel_options\": [{\"match\": \"bench\", "
                 "\"history_size\": %s}]`: every chat is kept, the engine splices its seq) against the same "
                 "server without it; closed loop (at most %s publishes in flight) and open loop at a fixed publish "
                 "rate (within the same window). A fresh server per run, off and on interleaved run by run. Judged "
                 "per server CPU-second; goal: history on within 10 %% of off (on / off ≥ %.2f).\n"
                 % (S["BENCH_HISTORY_SIZE"], S["BENCH_FANOUT_WINDOW"], HISTORY_GOAL))
        L.append("| load | off: deliveries/s | on: deliveries/s | off: per server CPU-s | on: per server CPU-s | "
                 "on / off (medians) | on / off run by run | goal |")
        L.append("|---|---:|---:|---:|---:|---:|---|---|")
        for variant, off, on, ratio, rounds in hist:
            L.append("| %s | %s | %s | %s | %s | **%.2f×** | %s | %s |" % (
                variant, fmt(off["median"]), fmt(on["median"]), fmt(off["per_cpu_s"]), fmt(on["per_cpu_s"]), ratio,
                ", ".join("%.2f" % x for x in rounds) or "—",
                "met" if ratio >= HISTORY_GOAL else "**missed**"))
        L.append("")
    if rec:
        L.append("Recovery storm (`wsrelay-bench recovery`, the history-on config): the clients subscribe, all "
                 "leave (close handshake), the publisher sends the missed messages (each acknowledged), then every "
                 "client reconnects at once (connect + handshake + auth + subscribe with `since` = the last seq it "
                 "saw). Measured: from the first reconnect until every client has received all it missed, each "
                 "checked to be exactly that many, seq and payload consecutive, after `recovered: true`, and nothing "
                 "more before the reply to a heartbeat sent afterwards. One unmeasured storm first, on the same "
                 "server. Server CPU from `/proc/<pid>/task/*/schedstat` (nanoseconds: the storm is shorter than "
                 "a few clock ticks of `/proc/<pid>/stat`); peak RSS: VmHWM, reset just before the storm "
                 "(`/proc/<pid>/clear_refs`), or VmRSS sampled every ~1 ms, whichever is higher.\n")
        L.append("| clients | missed each | complete (fewest of the runs) | until all recovered (median, min–max) | "
                 "last subscribe.ok | per client p50 / p99 | server CPU s (median, min–max) | missed messages per "
                 "server CPU-s | server RSS before → peak (median; highest) |")
        L.append("|---:|---:|---:|---|---:|---|---|---:|---|")
        for r in rec:
            L.append("| %s | %s | %s / %s | %.3f s (%.3f–%.3f) | %.3f s | %.0f / %.0f ms | %.3f (%.3f–%.3f) | %s | "
                     "%s → %s KiB (%s)%s |" % (
                         fmt(r["clients"]), r["missed"], fmt(r["complete_min"]), fmt(r["clients"]), r["median"], r["min"],
                         r["max"], r["subscribed_s"], r["p50_us"] / 1e3, r["p99_us"] / 1e3, r["server_cpu_s"],
                         r["server_cpu_min"], r["server_cpu_max"], fmt(r["per_cpu_s"]), fmt(r["rss_before"]),
                         fmt(r["rss_peak"]), fmt(r["rss_peak_max"]), "" if r["hwm_reset"] else
                         " (VmHWM not reset: since start)"))
        L.append("")
    return L


def reach_section(rows):
    """connect_backend and backend_inflight: wsrelay against itself, so not in the ratios table."""
    conn = [r for r in rows if r["scenario"] == "connect_backend"]
    infl = [r for r in rows if r["scenario"] == "backend_inflight"]
    if not conn and not infl:
        return []
    L = ["## Scripts that call a backend: connects through on_open, and 1,000 requests in flight\n"]
    if conn:
        L.append("`wsrelay-bench churn --protocol plain --welcome \"welcome \"` against `/connect` "
                 "(bench/conf/connect_backend.lua): each cycle connects, its `on_open` POSTs `{\"token\": "
                 "\"bench\"}` to the backend with `relay.http.request` and waits (its session's call suspended), "
                 "sends `welcome <user>` from the answer; the client closes when it has the welcome. %s cycles "
                 "at once, closed loop; counted: cycles completed in the %g s window (welcome received, closed). "
                 "The backend runs on the generator's core (test rig): FastAPI under Debian's uvicorn "
                 "(bench/python/backend.py; h11, no uvloop or httptools installed), or `wsrelay-bench serve-http` "
                 "(C, epoll, keep-alive, no framework); \"no backend call\" is the same script with the welcome "
                 "at once. A fresh server and backend per run. When the generator's core (generator + backend) is "
                 "full while the server's is not, the backend is the bottleneck and the server could do more.\n"
                 % (S["BENCH_CONNECT_CONCURRENCY"], DURATION))
        L.append("| backend | connects/s (median, min–max) | connect → welcome p50 / p99 | server CPU s (share of "
                 "its core) | server µs per connect | backend CPU s | backend µs per connect | generator's core "
                 "(generator + backend) | failed |")
        L.append("|---|---|---|---|---:|---|---:|---:|---:|")
        for r in conn:
            L.append("| %s | **%s** (%s–%s) | %.2f / %.2f ms | %.2f (%.0f%%) | %s | %s | %s | %.0f%% | %d |" % (
                r["server"].replace("wsrelay, ", ""), fmt(r["median"]), fmt(r["min"]), fmt(r["max"]),
                r["setup_p50_us"] / 1e3, r["setup_p99_us"] / 1e3, r["server_cpu_s"], 100 * r["server_share"],
                "%.0f" % r["server_us_per_connect"] if r["server_us_per_connect"] else "—",
                "%.2f" % r["backend_cpu_s"] if r["backend_cpu_s"] is not None else "—",
                "%.0f" % r["backend_us_per_connect"] if r["backend_us_per_connect"] else "—",
                100 * r["rig_share"], r["fail"]))
        L.append("")
    if infl:
        L.append("Bystanders: `wsrelay-bench latency` on `/ws` (the standard protocol's heartbeat, open loop, "
                 "latency from the scheduled send) with %s sessions on `/wait` (bench/conf/backend_wait.lua) "
                 "whose handler each waits on `GET /sleep?s=%s` (the backend answers after %s s): they send at "
                 "the start of a %s s warm-up and again on every answer (`--waiters`); no answer falls in the %g s "
                 "window (checked). In flight: `wsrelay_http_requests_in_flight` from `/metrics`, sampled every "
                 "0.5 s inside the window. Against the same bystanders alone, and with the %s sessions "
                 "connected but silent. This run: %s. A fresh server and backend per run, the three "
                 "interleaved.\n"
                 % (S["BENCH_INFLIGHT_WAITERS"], S["BENCH_INFLIGHT_SLEEP"], S["BENCH_INFLIGHT_SLEEP"],
                    S["BENCH_INFLIGHT_WARMUP"], DURATION, S["BENCH_INFLIGHT_WAITERS"], infl[0]["variant"]))
        L.append("| load | heartbeat p50 µs | p99 µs | max µs | p99 run by run | answered (median) | "
                 "lost | in flight in the window (min–max) | server CPU s | backend CPU s |")
        L.append("|---|---:|---:|---:|---|---:|---:|---|---:|---:|")
        for r in infl:
            L.append("| %s | %s | **%s** | %s | %s | %s | %d | %s | %.2f | %s |" % (
                r["server"], fmt(r["p50_us"]), fmt(r["p99_us"]), fmt(r["max_us"]),
                ", ".join(fmt(x) for x in r["p99_runs"]), fmt(r["answered"]), r["lost"],
                "%s–%s" % (fmt_opt(r["inflight_min"]), fmt_opt(r["inflight_max"])), r["server_cpu_s"],
                "%.2f" % r["backend_cpu_s"] if r["backend_cpu_s"] is not None else "—"))
        L.append("")
    return L


def machine():
    model = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem = "?"
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal"):
                mem = "%.1f GiB" % (int(line.split()[1]) / 1048576)
    def ver(cmd):
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout.strip().splitlines()[0]
        except Exception:
            return "?"
    def deb(pkg):
        try:
            return subprocess.run(["dpkg-query", "-W", "-f=${Version}", pkg], capture_output=True, text=True).stdout
        except Exception:
            return "?"
    return {
        "nproc": os.cpu_count(), "cpu": model, "kernel": platform.release(), "memory": mem,
        "wsrelay": ver([S["WSRELAY"], "--version"]), "node": ver(["node", "--version"]),
        "libwebsockets": deb("libwebsockets-dev") or deb("libwebsockets17"),
        "nginx": deb("nginx-light") or deb("nginx") or deb("nginx-core"), "nchan": deb("libnginx-mod-nchan"),
        "ws": json.load(open(os.path.join(NODE_DIR, "package.json")))["dependencies"]["ws"],
    }


def chart(rows, png):
    """Four panels (echo, fan-out, idle, churn), median bars with min-max whiskers."""
    if not shutil.which("gnuplot"):
        problems.append("gnuplot not installed: no chart")
        return False
    d = os.path.join(TMP, "chart")
    os.makedirs(d, exist_ok=True)
    panels = []

    def panel(fname, title, ylabel, series, logscale=False):
        # series: [(column title, [(server, med, lo, hi)])]; servers are the x groups
        servers = []
        for _, pts in series:
            for s, *_ in pts:
                if s not in servers:
                    servers.append(s)
        if not servers:
            return
        with open(os.path.join(d, fname), "w") as f:
            for s in servers:
                cols = ['"%s"' % s]
                for _, pts in series:
                    hit = [p for p in pts if p[0] == s]
                    cols += ["%g %g %g" % hit[0][1:] if hit else "- - -"]
                f.write(" ".join(cols) + "\n")
        plots = []
        for i, (title_s, _) in enumerate(series):
            c = 2 + 3 * i
            plots.append("'%s' using %d:%d:%d%s %s" % (
                os.path.join(d, fname), c, c + 1, c + 2, ":xtic(1)",
                "title '%s'" % title_s if len(series) > 1 else "notitle"))
        panels.append("set title '%s'\nset ylabel '%s'\n%s\nplot %s\n" % (
            title, ylabel, "set logscale y" if logscale else "unset logscale y", ", ".join(plots)))

    def pts(scenario, variant=None):
        return [(r["server"], r["median"], r["min"], r["max"]) for r in rows
                if r["scenario"] == scenario and (variant is None or r["variant"] == variant)]

    echo = [r for r in rows if r["scenario"] == "echo"]
    if echo:
        panel("echo.dat", "echo, %s (msg/s, higher is better)" % echo[0]["variant"], "msg/s", [("median", pts("echo"))])
    fan_vars = sorted({r["variant"] for r in rows if r["scenario"] == "fanout"}, key=lambda v: int(v.split()[0]))
    if fan_vars:
        panel("fanout.dat", "fan-out (deliveries/s, higher is better)", "deliveries/s",
              [(v, pts("fanout", v)) for v in fan_vars])
    def cpu_pts(scenario, variant=None):
        return [(r["server"], r["per_cpu_s"], r["per_cpu_s"], r["per_cpu_s"]) for r in rows
                if r["scenario"] == scenario and (variant is None or r["variant"] == variant) and r["per_cpu_s"]]
    per_cpu_series = []
    if echo:
        per_cpu_series.append(("echo", cpu_pts("echo")))
    per_cpu_series += [("fan-out, " + v, cpu_pts("fanout", v)) for v in fan_vars]
    if per_cpu_series:
        panel("percpu.dat", "messages (deliveries) per server CPU-second, higher is better", "per CPU-second",
              per_cpu_series)
    idle = [r for r in rows if r["scenario"] == "idle"]
    if idle:
        panel("idle.dat", "idle, %s (KiB RSS per connection, lower is better)" % idle[0]["variant"], "KiB",
              [("median", pts("idle"))])
    churn_max = [v for v in {r["variant"] for r in rows if r["scenario"] == "churn"} if v.startswith("max")]
    if churn_max:
        panel("churn.dat", "churn, connect+auth+subscribe+close (cycles/s)", "cycles/s",
              [("median", pts("churn", churn_max[0]))])
    if not panels:
        return False
    script = ["set terminal pngcairo size 1400,%d font 'DejaVu Sans,10'" % (380 * ((len(panels) + 1) // 2)),
              "set output '%s'" % png,
              "set datafile missing '-'",  # a server with no run in a column
              "set style data histograms", "set style histogram errorbars gap 1 lw 1",
              "set style fill solid 0.7 border -1", "set boxwidth 0.9", "set grid ytics", "set yrange [0:*]",
              "set offsets 0, 0, graph 0.08, 0",
              "set key top left", "set xtics nomirror", "set format y '%g'",
              "set multiplot layout %d,2 title 'wsrelay vs peers (server on one core; median of runs, whiskers min-max)'"
              % ((len(panels) + 1) // 2)]
    script += panels
    script.append("unset multiplot")
    with open(os.path.join(d, "chart.gp"), "w") as f:
        f.write("\n".join(script) + "\n")
    p = subprocess.run(["gnuplot", os.path.join(d, "chart.gp")], capture_output=True, text=True)
    if p.returncode != 0:
        problems.append("gnuplot failed: " + p.stderr.strip()[:300])
        return False
    return True


TARGETS = {
    ("echo", "lws floor"): (0.85, "≥ 0.85× the raw lws floor"),
    ("echo", "node ws"): (1.5, "≥ 1.5× node ws"),
    ("echo", "python websockets"): (6.0, "≥ 6× Python websockets"),
    ("fanout", "lws floor"): (1.5, "≥ 1.5× (at 1k and 10k subscribers)"),
    ("fanout", "node ws"): (1.5, "≥ 1.5× (at 1k and 10k subscribers)"),
    ("fanout", "nginx nchan"): (1.0, "≥ 1× nchan"),
}


def write_report(rows, rats, mach, started, elapsed, busy_before, busy_after, steal_pct=None):
    out = S["BENCH_OUT"]
    png = os.path.splitext(out)[0] + ".png"
    have_chart = chart(rows, png)
    L = []
    L.append("# Benchmarks\n")
    L.append("Written by `make bench` (bench/run_bench.py) on %s, in %.0f s. Rerun it to reproduce: "
             "every number below comes from that one run. The tool is `wsrelay-bench` (bench/wsrelay_bench.cpp: "
             "C++ on epoll, pre-masked frames, no Lua, no lws); `wsrelay-bench --help` lists its scenarios.\n"
             % (started, elapsed))
    L.append("## Machine\n")
    L.append("| | |\n|---|---|")
    L.append("| cores (nproc) | %s |" % mach["nproc"])
    L.append("| CPU | %s |" % mach["cpu"])
    L.append("| kernel | %s |" % mach["kernel"])
    L.append("| memory | %s |" % mach["memory"])
    L.append("| wsrelay | %s (build/, RelWithDebInfo) |" % mach["wsrelay"])
    L.append("| libwebsockets | %s (Debian) |" % mach["libwebsockets"])
    L.append("| node / ws | %s / %s (npm, bench/node/package-lock.json) |" % (mach["node"], mach["ws"]))
    L.append("| nginx / nchan | %s / %s (Debian) |" % (mach["nginx"] or "—", mach["nchan"] or "—"))
    L.append("| background CPU load | %.0f%% of both cores before, %.0f%% after; up to %.0f%% before a run "
             "(each run first waits up to BENCH_QUIET_WAIT=%s s for < 10%%) |"
             % (100 * busy_before, 100 * busy_after, 100 * max(quiet_log or [0]), S["BENCH_QUIET_WAIT"]))
    if steal_pct is not None:
        L.append("| CPU time taken by the host (steal) | %.1f%% of the run |" % steal_pct)
    L.append("")
    L.append("## Method\n")
    L.append("- Each server runs pinned to core %s (`taskset -c %s`), the generator to core %s; each run starts a "
             "fresh server, warms up for %g s, then measures for %g s. %d runs per cell, servers interleaved run by "
             "run; the tables show the median and the spread ((max − min) / median)." % (SCPU, SCPU, GCPU, WARMUP,
                                                                                          DURATION, RUNS))
    L.append("- Server CPU seconds are read from `/proc/<pid>/stat` (utime + stime, every thread) at the edges of "
             "the measured window, so throughput also reads as messages per server CPU-second. The generator "
             "reports its own CPU (getrusage): a generator at > 90 % of its core is flagged, since then the "
             "server may be faster than the number shows.")
    L.append("- wsrelay runs the built-in standard protocol (`/ws`: welcome, auth, subscribe, heartbeat, chat) with "
             "`\"limits\": {\"messages_per_second\": 0, \"max_connections_per_ip\": 0, \"max_connections\": 0}`, "
             "`log_level` warn. The peers speak plain WebSocket: the lws floor (bench/lws_floor.c: lws 4.1, no JSON, "
             "no Lua, one shared refcounted buffer per broadcast), node `ws` (bench/node/echo.js, broadcast.js), "
             "Python websockets for echo (bench/python/echo.py, Debian's python3-websockets), "
             "nginx + nchan (bench/conf/nchan.conf, one process) for fan-out, Debian's "
             "`libwebsockets-test-server` (lws-mirror-protocol) for idle memory.")
    L.append("- echo: %s connections, one 36-byte message in flight each (`{\"type\":\"heartbeat\",\"id\":1000000001}`; "
             "wsrelay answers it through Lua and cJSON, the peers echo it). latency: the same, open loop at "
             "%s msg/s, latency counted from the scheduled send time. fanout: one publisher, N subscribers, "
             "at most %s publishes in flight (a publish is done when every subscriber has it); latency is "
             "publish → receive. relay: client → wsrelay → its own upstream (wsrelay-bench serve-echo, on the "
             "generator's core) → client, %s msg/s over %s clients, compared with the same load sent to the "
             "upstream directly. idle: N connections set up (wsrelay: auth + subscribe), then 2 s of silence; "
             "(RSS after − RSS before) / N. churn: connect + handshake + auth + subscribe + close cycles, at a "
             "fixed rate and as fast as %s concurrent cycles go."
             % (S["BENCH_CONNS"], S["BENCH_LAT_RATE"], S["BENCH_FANOUT_WINDOW"], S["BENCH_LAT_RATE"],
                S["BENCH_CONNS"], S["BENCH_CHURN_CONCURRENCY"]))
    L.append("- history: the fan-out scenario at %s subscribers on wsrelay with and without history for the bench "
             "channel (history_size %s), closed loop and at %s publishes/s. recovery: %s clients of that channel "
             "leave, %s messages are published, all reconnect at once with `since`; details in \"Channel memory\" "
             "below." % (S["BENCH_HISTORY_SUBS"], S["BENCH_HISTORY_SIZE"], S["BENCH_HISTORY_RATE"],
                          S["BENCH_RECOVERY_CLIENTS"], S["BENCH_RECOVERY_MISSED"]))
    L.append("- connect_backend: connect + an on_open that calls a local backend (relay.http.request) + welcome + "
             "close, %s at once; backend_inflight: heartbeat latency of %s bystanders while %s handlers wait on a "
             "sleeping backend; details in \"Scripts that call a backend\" below." % (
                 S["BENCH_CONNECT_CONCURRENCY"], S["BENCH_INFLIGHT_BYSTANDERS"], S["BENCH_INFLIGHT_WAITERS"]))
    L.append("")
    L.append("## Results\n")
    L.append("| scenario | load | server | median | unit | min | max | spread | p50 µs | p99 µs | p99.9 µs | "
             "server CPU s | per server CPU-s | generator CPU |")
    L.append("|---|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        L.append("| %s | %s | %s | **%s** | %s | %s | %s | %.0f%% | %s | %s | %s | %.2f | %s | %.0f%% |" % (
            r["scenario"], r["variant"], r["server"], fmt(r["median"]), r["unit"], fmt(r["min"]), fmt(r["max"]),
            r["spread_pct"], fmt(r["p50_us"]), fmt(r["p99_us"]), fmt(r["p999_us"]), r["server_cpu_s"],
            fmt(r["per_cpu_s"]) if r["per_cpu_s"] else "—", r["gen_cpu_pct"]))
    L.append("")
    extra = [r for r in rows if r["scenario"] in ("idle", "churn", "relay")]
    if extra:
        L.append("| scenario | load | server | details |")
        L.append("|---|---|---|---|")
        for r in extra:
            if r["scenario"] == "idle":
                d = "%d connections ready (fewest of the runs); established in %.2f s (median)" % (
                    r["ready"], r["establish_s"])
            elif r["scenario"] == "churn":
                d = "%d failed cycles over all runs; p99 connect → subscribed %s µs; server RSS %s KiB (last run, " \
                    "growth up to %.1f%%)" % (r["fail"], fmt(r["setup_p99_us"]), r["rss"], r["rss_growth_pct"])
            else:
                d = "p99 direct to the upstream %s µs, through wsrelay %s µs" % (fmt(r["direct_p99_us"]),
                                                                                fmt(r["relay_p99_us"]))
            L.append("| %s | %s | %s | %s |" % (r["scenario"], r["variant"], r["server"], d))
        L.append("")
    L.extend(time_split_section(rows))
    if have_chart:
        L.append("![wsrelay vs peers](%s)\n" % os.path.basename(png))
    L.append("## Ratios wsrelay / peer\n")
    L.append("Same run, medians. For msg/s, deliveries/s and cycles/s higher is better for wsrelay; for KiB per "
             "connection and latency lower is better. Targets are judged on the per server CPU-second ratio where "
             "there is one (it does not depend on how much of its core each server got).\n")
    L.append("| scenario | load | peer | wsrelay / peer | per server CPU-second | target (issue 6) |")
    L.append("|---|---|---|---:|---:|---|")
    for q in rats:
        t = TARGETS.get((q["scenario"], q["peer"]))
        if q["scenario"] == "fanout" and int(q["variant"].split()[0]) < 1000:
            t = None  # the fan-out targets are for 1k and 10k subscribers
        tgt = ""
        if t:
            judged = q.get("per_cpu_ratio") or q["ratio"]
            tgt = "%s: %s" % (t[1], "met" if judged >= t[0] else "**missed**")
        if q["scenario"] == "idle":
            tgt = "≤ 3.5 KiB/conn absolute"
        L.append("| %s | %s | %s | %.2f× | %s | %s |" % (
            q["scenario"], q["variant"], q["peer"], q["ratio"],
            "%.2f×" % q["per_cpu_ratio"] if q.get("per_cpu_ratio") else "—", tgt))
    L.append("")
    L.extend(channel_memory_section(rows))
    L.extend(reach_section(rows))
    L.append("## Problems seen during the run\n")
    if problems:
        for p in problems:
            L.append("- " + p)
    else:
        L.append("- none: no failed connection, no lost message, no error reply, no saturated generator.")
    L.append("")
    instructions = os.path.join(ROOT, "bench", "instructions.json")
    if os.path.exists(instructions):
        with open(instructions) as f:
            recorded = json.load(f)
        L.append("## Instructions per message (callgrind)\n")
        L.append("Not from this run: the figures `make bench-smoke` (part of `make test`) checks, from "
                 "bench/instructions.json (bench/instructions.py: the server under `valgrind --tool=callgrind`, "
                 "one message in flight, the difference of two runs with few and many messages). Counts do not "
                 "depend on the machine's load; a path more than %.0f%% over its figure fails the test.\n"
                 % (100 * recorded.get("tolerance", 0.1)))
        L.append("| path | instructions | per |")
        L.append("|---|---:|---|")
        about = {"heartbeat": "heartbeat (standard protocol: JSON decoded into Lua, the handler, the reply encoded)",
                 "fanout": "chat fan-out, 1 publisher → 10 subscribers",
                 "relay": "relay pass-through (client → wsrelay → upstream echo → client)"}
        for name, v in sorted(recorded.get("paths", {}).items()):
            L.append("| %s | %s | %s |" % (about.get(name, name), fmt(v["instructions"]), v["per"]))
        L.append("")
    findings = os.path.join(ROOT, "bench", "findings.md")
    if os.path.exists(findings):
        with open(findings) as f:
            L.append(f.read().rstrip() + "\n")
    L.append("## Commands\n")
    L.append("```sh\nmake bench            # everything below; settings: %s\n```\n" % ", ".join(
        "%s=%s" % (k, v) for k, v in S.items() if k.startswith("BENCH_") and k not in ("BENCH_OUT", "BENCH_BUILD")))
    L.append("Each cell runs (`$SERVER_PID` is the server's pid, pinned with `taskset -c %s`):\n" % SCPU)
    L.append("```sh")
    for (scenario, variant, name), cmd in commands.items():
        L.append("# %s, %s, %s" % (scenario, variant, name))
        L.append(cmd)
    L.append("```")
    L.append("")
    L.append("Servers: `build/wsrelay --config <bench config>` (above), `build-bench/lws-floor --port %d --mode "
             "echo|broadcast`, `node bench/node/echo.js %d` / `broadcast.js`, "
             "`python3 bench/python/echo.py %d`, `nginx -p <tmp> -c "
             "bench/conf/nchan.conf` (port filled in), `libwebsockets-test-server --port %d`. Backends (on the "
             "generator's core): `python3 -m uvicorn backend:app --app-dir bench/python --port %d --log-level warning "
             "--no-access-log --backlog 4096`, `build-bench/wsrelay-bench serve-http --listen-port %d`; the scripts "
             "bench/conf/connect_backend.lua and backend_wait.lua with the backend's URL filled in. Server logs: "
             "build-bench/logs/.\n" % (PORTS["floor"], PORTS["node"], PORTS["python"], PORTS["lws-test-server"],
                                        PORTS["backend"], PORTS["backend"]))
    with open(out, "w") as f:
        f.write("\n".join(L))
    return out


def main():
    if "--report-only" in sys.argv:  # rewrite docs/benchmarks.md from the last run's results.json
        with open(os.path.join(S["BENCH_BUILD"], "results.json")) as f:
            report(json.load(f))
        return
    for path in (BENCH, FLOOR, S["WSRELAY"]):
        if not os.access(path, os.X_OK):
            sys.exit("run_bench: %s is missing: build first (make bench does)" % path)
    started = time.strftime("%Y-%m-%d %H:%M %Z")
    t0 = time.time()
    busy_before = cpu_busy(1.0)
    steal0, ticks0 = cpu_ticks()
    log("wsrelay-bench side by side: server on core %s, generator on core %s, %d runs of %g s (+%g s warm-up)"
        % (SCPU, GCPU, RUNS, DURATION, WARMUP))
    if busy_before > 0.10:
        log("note: the machine is already %.0f%% busy: numbers will be noisy" % (100 * busy_before))
    table = {"echo": scenario_echo, "latency": scenario_latency, "fanout": scenario_fanout,
             "relay": scenario_relay, "idle": scenario_idle, "churn": scenario_churn,
             "history": scenario_history, "recovery": scenario_recovery,
             "connect_backend": scenario_connect_backend, "backend_inflight": scenario_backend_inflight}
    try:
        for name in S["BENCH_SCENARIOS"].split():
            if name not in table:
                sys.exit("BENCH_SCENARIOS: unknown scenario %s" % name)
            log("== %s" % name)
            table[name]()
    finally:
        shutil.rmtree(TMP, ignore_errors=True)
    busy_after = cpu_busy(1.0)
    steal1, ticks1 = cpu_ticks()
    # On a virtual machine the host may run something else on our cores:
    # that time (steal) is neither ours nor idle, and every figure suffers.
    steal_pct = 100.0 * (steal1 - steal0) / max(ticks1 - ticks0, 1)
    if steal_pct >= 1.0:
        problems.append("the host took %.1f%% of this machine's CPU time during the run (steal time in /proc/stat): "
                        "every server got less than its core; throughput figures are low and noisy" % steal_pct)
    state = {"steal_pct": steal_pct, "settings": S, "problems": problems, "quiet_log": quiet_log,
             "commands": [[list(k), v] for k, v in commands.items()],
             "runs": [{"scenario": k[0], "variant": k[1], "server": k[2], "results": v} for k, v in results.items()],
             "started": started, "elapsed": time.time() - t0, "busy_before": busy_before, "busy_after": busy_after,
             "machine": machine()}
    with open(os.path.join(S["BENCH_BUILD"], "results.json"), "w") as f:
        json.dump(state, f, indent=1)
    report(state)


def report(state):
    """Print the summary and write docs/benchmarks.md from a saved state (results.json)."""
    problems[:] = state["problems"]
    quiet_log[:] = state["quiet_log"]
    commands.clear()
    commands.update({tuple(k): v for k, v in state["commands"]})
    results.clear()
    results.update({(r["scenario"], r["variant"], r["server"]): r["results"] for r in state["runs"]})
    rows = build_rows()
    rats = ratios(rows)
    log("")
    log("%-8s %-18s %-16s %14s %-13s %7s %10s" % ("scenario", "load", "server", "median", "unit", "spread",
                                                  "p99 µs"))
    for r in rows:
        log("%-8s %-18s %-16s %14s %-13s %6.0f%% %10s" % (r["scenario"], r["variant"], r["server"], fmt(r["median"]),
                                                         r["unit"], r["spread_pct"], fmt(r["p99_us"])))
    log("")
    log("ratios wsrelay / peer:")
    for q in rats:
        log("  %-8s %-18s %-16s %6.2fx%s  (%s, %s)" % (
            q["scenario"], q["variant"], q["peer"], q["ratio"],
            "  (%.2fx per server CPU-second)" % q["per_cpu_ratio"] if q.get("per_cpu_ratio") else "", q["unit"],
            "higher is better" if q["higher_better"] else "lower is better"))
    for variant, off, on, ratio, rounds in history_comparison(rows):
        log("  history  %-30s on / off %.2fx per server CPU-second (run by run %s; goal >= %.2f: %s)" % (
            variant, ratio, ", ".join("%.2f" % x for x in rounds), HISTORY_GOAL,
            "met" if ratio >= HISTORY_GOAL else "MISSED"))
    if problems:
        log("")
        log("problems:")
        for p in problems:
            log("  - " + p)
    out = write_report(rows, rats, state["machine"], state["started"], state["elapsed"], state["busy_before"],
                       state["busy_after"], state.get("steal_pct"))
    log("")
    log("wrote %s (+ %s)" % (os.path.relpath(out, ROOT), os.path.relpath(os.path.splitext(out)[0] + ".png", ROOT)))


if __name__ == "__main__":
    main()
