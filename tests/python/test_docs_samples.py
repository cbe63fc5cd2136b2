#!/usr/bin/python3
"""Every code block of the documentation, run for real against the built binary.

Usage: test_docs_samples.py <wsrelay-binary> <source-dir>

Pages: README.md, docs/{protocol,lua-api,configuration,plugins,operations,
security,architecture}.md, examples/*/README.md (docs_samples.pages()).
Blocks are taken in page order; each page gets a scratch folder (with
a copy of `scripts`, and `examples`, `tests`, `docs`, `build` and `plugins`
linking into the source and build trees), so a later block sees the files and
servers of earlier ones. Files named by `file` marks are written first.

What is done with a block, by its language:

  json   A config, or a config fragment merged into a minimal config
         (`{"endpoints":[{"path":"/ws"}]}`; an endpoint object or an
         `"upstream": {...}` becomes endpoints[0]): `wsrelay --check` must
         accept it. A script it names that does not exist is created as a stub
         (`return {}`): the config is what is checked. Anything else must be
         JSON messages, one per line (`…` stands for any value, or, as a
         member, for more members): they must parse.
  lua    A whole script: loaded as an endpoint script by `wsrelay --check`;
         a block of handler-table entries (`function handlers.x(...)`,
         `handlers.http = {...}`) is loaded as the table they belong to.
         `-- example: NAME` on its first line saves it as NAME for later blocks.
         Marked `fragment`: compiled and loaded inside a handler function
         (or, failing that, as entries of the `http` route table).
  text   (also unlabelled) Lines `→ …` / `← …`, optionally prefixed by a
         client name (`A → …`), are an exchange: replayed over real WebSockets
         against a fresh server and every answer compared field by field
         (`ts`, `timestamp`, `session`, `session_id`, `server_time`: same
         type only; `…` matches anything). Other text blocks are output or
         diagrams and are not run.
  sh     Run command by command with bash in the page's folder: `wsrelay`,
         `./build/wsrelay`, `/usr/local/bin/wsrelay` are the built binary;
         a command that starts a server (wsrelay without --check/--help/
         --version, embed_host) is started in the background on a free port,
         and HOST:PORT of the page's servers in later commands point at it;
         a command that talks to 127.0.0.1:8000 with no server of the page
         running starts the page's server first (the built-in default, or
         examples/X/config.json). `curl` runs with --fail; `NAME=...`
         placeholders get the test's values; `sudo -u USER` is dropped; a
         16-hex session id is replaced by
         a live session's. A comment right above a command that ends in a
         JSON object (`# every session: {...}`) is what it prints: the output
         must have that shape (same fields and types), and no output may show
         an error reply. Building this tree (`cmake -S . -B build`, `cmake
         --build build`) is not redone. Only the binary, python3 and a few
         harmless tools run (RUNNABLE); anything else (make, apt-get,
         systemctl, installs) needs a skip mark. HOME is the scratch folder.
         Every command must exit 0.
  ini    A systemd unit: `systemd-analyze verify` must accept it silently
         (/usr/local/bin/wsrelay is the built binary).
  nginx  A site: `nginx -t` must accept it inside an http block (its
         certificates: fresh self-signed files).
  yaml   A Prometheus scrape config: each target's metrics_path on the
         page's server answers in the Prometheus text format.
  c      Marked `plugin`: see below.
  other  (cmake, yaml, ...) no runner: must be marked.

Marks (an HTML comment before the block; see docs_samples.py):
  <!-- sample: skip (reason) -->       not run
  <!-- sample: fragment -->            lua: not a whole script (see above)
  <!-- sample: file NAME -->           also save the block as NAME (an absolute
                                       NAME is put in the scratch folder, and
                                       commands naming it get that copy)
  <!-- sample: response GET /path [path=/ws/x] -->
                                       json: the page's server answers the
                                       request with JSON of this shape (same
                                       fields and types; values are live),
                                       while a WebSocket on path= is open
  <!-- sample: log [FLAGS] -->         text: log lines a relay started with
                                       FLAGS prints for a session (auth as
                                       alice, subscribe lobby, close 1000)
  <!-- sample: upstream -->            json: frames the relay sends upstream;
                                       the fake OpenAI (tests/upstream/
                                       fake_realtime.py, which stands in for it
                                       in every sample) must have received
                                       them in this order
  <!-- sample: plugin libNAME.so -->   c: compiled as a plugin into the page's
                                       `myplugins` folder and loaded by
                                       `wsrelay --check`; an extension is then
                                       enabled for the page's later lua blocks
  <!-- sample: exchange k=v ... [after MSG ...] -->
        server=default|CONFIG   the server (default: the page's); CONFIG: a
                                config saved by a `file` mark of the page, or a
                                file of the source tree
        script=NAME|above       run this script (saved earlier on the page;
                                `above`: the nearest lua block above)
        endpoint=/p/{x}         its endpoint path (default: path)
        path=/p/1               the URL path clients open (default /ws)
        after MSG ...           each client first sends these messages and
                                reads one answer to each ("{client}" in
                                them: the client's name, e.g. A)
        On a json block: its lines are what one client receives on open.
        Each exchange runs on a fresh server; a client connects at its first
        line (what it is sent on open is read first unless that line is
        `←`); `← …` skips frames up to the next line's; at the end no client
        may have a frame the block does not show; a JWT shown as
        `header.payload.…` is signed with the secret of a JWT-mode server;
        an "epoch" of 12 hex characters (a history channel's stream) matches
        the server's the first time it is received, and stands for that one
        afterwards, in later answers and in what clients send.
An unmarked block the test cannot run fails, so a new page cannot rot unseen.
"""

import asyncio
import base64
import hashlib
import hmac
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import websockets  # noqa: E402

import docs_samples  # noqa: E402
from wsrelay_harness import Checker, Server, ServerError, clean_env, free_port, self_signed_cert, usage_args  # noqa: E402

BINARY, SOURCE = usage_args()
BUILD = os.path.dirname(BINARY)
PYTHON = "/usr/bin/python3"

JWT_SECRET = "docs-samples-jwt-secret-0123456789"
SECRETS = {
    "WSRELAY_ADMIN_TOKEN": "docs-samples-admin-token",
    "OPENAI_API_KEY": "sk-docs-samples-not-a-key",
    # Never the real OpenAI from a test: main() points this at tests/upstream/fake_realtime.py.
    "OPENAI_REALTIME_URL": "ws://127.0.0.1:9/v1/realtime",
    "WSRELAY_ASSISTANT_URL": "ws://127.0.0.1:9/v1/realtime",  # the built-in config's /assistant
}

TOP_KEYS = {"listen", "heartbeat", "log_level", "jwt", "endpoints", "limits", "admin_token",
            "static", "plugin_dirs", "extensions", "watch_scripts", "channel_options"}
ENDPOINT_KEYS = {"path", "script", "max_message_size", "options", "upstream", "allowed_origins"}
VOLATILE = {"ts", "timestamp", "session", "session_id", "server_time"}
ELLIPSIS = "\u2026"
VERBOSE = os.environ.get("DOCS_SAMPLES_VERBOSE") == "1"  # print every command and its output

c = Checker()
stats = {}          # page -> {"run": n, "parsed": n, "output": n, "skip": [reasons], "fragment": n}


def count(page, what, reason=None):
    s = stats.setdefault(page, {"run": 0, "parsed": 0, "output": 0, "fragment": 0, "skip": []})
    if what == "skip":
        s["skip"].append(reason)
    else:
        s[what] += 1


def base_env(jwt=False):
    env = clean_env(SECRETS, remove=("WSRELAY_JWT_SECRET",))
    if jwt:
        env["WSRELAY_JWT_SECRET"] = JWT_SECRET
    return env


# ---- JSON with … --------------------------------------------------------------


def relax(text):
    """Doc JSON with `…` elisions -> plain JSON: `…` as a value becomes the
    string "…" (matches anything); as a member (`{…}`, `,…}`) the member
    "…":"…" (more members allowed). `…` inside strings is left alone."""
    out = []
    stack = []
    in_str = False
    esc = False
    prev = ""
    for ch in text:
        if in_str:
            out.append(ch)
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                in_str = False
                prev = '"'
            continue
        if ch == '"':
            in_str = True
            out.append(ch)
            continue
        if ch in "{[":
            stack.append(ch)
        elif ch in "}]" and stack:
            stack.pop()
        if ch == ELLIPSIS:
            if stack and stack[-1] == "{" and prev in ("{", ","):
                out.append('"%s":"%s"' % (ELLIPSIS, ELLIPSIS))
            else:
                out.append('"%s"' % ELLIPSIS)
            prev = '"'
            continue
        out.append(ch)
        if not ch.isspace():
            prev = ch
    return "".join(out)


def loads_doc(text):
    return json.loads(relax(text))


def raw_decode_doc(text):
    """(value, rest) of the first JSON value in text (after relax)."""
    relaxed = relax(text)
    value, end = json.JSONDecoder().raw_decode(relaxed)
    return value, relaxed[end:]


HEX16 = re.compile(r"^[0-9a-f]{16}$")
HEX16_IN = re.compile(r"(?<![0-9a-f])[0-9a-f]{16}(?![0-9a-f])")


def mismatch(expected, actual, where="$"):
    """None if actual matches the doc's expected value, else a description."""
    if expected == ELLIPSIS:
        return None
    if isinstance(expected, str) and isinstance(actual, str) and (
            ELLIPSIS in expected or HEX16_IN.search(expected)):
        # `…` matches anything; a session id (16 hex characters) any session id.
        pattern = ".*".join(HEX16_IN.sub("[0-9a-f]{16}", re.escape(p)) for p in expected.split(ELLIPSIS))
        return None if re.fullmatch(pattern, actual, re.S) else "%s: %r does not match %r" % (where, actual, expected)
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return "%s: expected an object, got %r" % (where, actual)
        open_ended = ELLIPSIS in expected
        for key, value in expected.items():
            if key == ELLIPSIS:
                continue
            if key not in actual:
                return "%s: field %r missing" % (where, key)
            if key in VOLATILE:
                a = actual[key]
                same = (isinstance(a, bool) == isinstance(value, bool)
                        and (isinstance(a, (int, float)) and isinstance(value, (int, float))
                             or type(a) is type(value)))
                if value == ELLIPSIS or same:
                    if key in ("session", "session_id") and isinstance(value, str) and HEX16.match(value):
                        if not HEX16.match(str(a)):
                            return "%s.%s: %r is not 16 hex characters" % (where, key, a)
                    continue
                return "%s.%s: expected a value like %r, got %r" % (where, key, value, a)
            sub = mismatch(value, actual[key], "%s.%s" % (where, key))
            if sub:
                return sub
        if not open_ended:
            extra = sorted(set(actual) - set(expected))
            if extra:
                return "%s: fields the doc does not show: %s (got %s)" % (
                    where, ", ".join(extra), json.dumps(actual))
        return None
    if isinstance(expected, list):
        if not isinstance(actual, list):
            return "%s: expected an array, got %r" % (where, actual)
        if expected and expected[-1] == ELLIPSIS:
            expected = expected[:-1]
            actual = actual[:len(expected)]
        if len(expected) != len(actual):
            return "%s: expected %d elements, got %d" % (where, len(expected), len(actual))
        for i, (e, a) in enumerate(zip(expected, actual)):
            sub = mismatch(e, a, "%s[%d]" % (where, i))
            if sub:
                return sub
        return None
    if isinstance(expected, bool) or isinstance(actual, bool):
        return None if expected is actual else "%s: expected %r, got %r" % (where, expected, actual)
    if expected != actual:
        return "%s: expected %r, got %r" % (where, expected, actual)
    return None


# ---- the page context ------------------------------------------------------------


class Page:
    def __init__(self, page):
        self.page = page
        self.tmp = tempfile.mkdtemp(prefix="docs-samples-")
        shutil.copytree(os.path.join(SOURCE, "scripts"), os.path.join(self.tmp, "scripts"))
        for name, target in (("examples", os.path.join(SOURCE, "examples")),
                             ("tests", os.path.join(SOURCE, "tests")),
                             ("docs", os.path.join(SOURCE, "docs")),
                             ("build", BUILD),
                             ("plugins", os.path.join(BUILD, "plugins"))):
            os.symlink(target, os.path.join(self.tmp, name))
        self.servers = []        # (doc_port, Server or Popen, actual_port)
        self.files = {}          # name -> path, saved by earlier blocks
        self.last_lua = None
        self.extensions = []     # extension plugins compiled from the page's C samples
        self.live = []           # raw sockets of live sessions
        self.live_ids = []
        folder = os.path.dirname(page)
        config = os.path.join(SOURCE, folder, "config.json")
        if page.startswith("examples/") and os.path.isfile(config):
            self.server_args = ["--config", config]
            self.doc_port = config_port(config)
        else:
            self.server_args = []
            self.doc_port = 8000

    def close(self):
        for s in self.live:
            try:
                s.close()
            except OSError:
                pass
        for _, proc, _ in self.servers:
            stop(proc)
        self.servers = []
        shutil.rmtree(self.tmp, ignore_errors=True)

    def save(self, name, text):
        """Writes a file into the scratch folder; an absolute name (a file
        mark's /etc/wsrelay/config.json) goes under it too."""
        path = os.path.join(self.tmp, name.lstrip("/"))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        self.files[name] = path
        return path

    def add_server(self, doc_port, proc, port):
        """A server a sample starts replaces the page's earlier one on its port."""
        for entry in [e for e in self.servers if e[0] == doc_port]:
            stop(entry[1])
            self.servers.remove(entry)
        for sock in self.live:
            sock.close()
        self.live, self.live_ids = [], []
        self.servers.append((doc_port, proc, port))

    def port_map(self):
        """doc port -> actual port, the latest server for each doc port."""
        ports = {}
        for doc_port, _, actual in self.servers:
            ports[doc_port] = actual
        return ports

    def ensure_server(self):
        if self.doc_port not in self.port_map():
            server = Server(BINARY, self.server_args, env=base_env(), cwd=self.tmp).start()
            self.add_server(self.doc_port, server, server.port)
        return self.port_map()[self.doc_port]


def stop(proc):
    if isinstance(proc, Server):
        proc.stop()
    elif proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def config_port(path):
    try:
        with open(path, encoding="utf-8") as f:
            listen = json.load(f).get("listen", {})
    except (OSError, ValueError):
        return 8000
    if isinstance(listen, list):
        listen = listen[0] if listen else {}
    return listen.get("port", 8000) if isinstance(listen, dict) else 8000


# ---- json ---------------------------------------------------------------------


def make_tls_files(config, folder):
    """Self-signed PEM files wherever a listener names tls.cert / tls.key."""
    listen = config.get("listen", [])
    for listener in listen if isinstance(listen, list) else [listen]:
        tls = listener.get("tls") if isinstance(listener, dict) else None
        if not tls:
            continue
        cert = os.path.join(folder, tls["cert"])
        key = os.path.join(folder, tls["key"])
        if os.path.exists(cert) and os.path.exists(key):
            continue
        os.makedirs(os.path.dirname(cert), exist_ok=True)
        os.makedirs(os.path.dirname(key), exist_ok=True)
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                        "-subj", "/CN=localhost", "-keyout", key, "-out", cert],
                       check=True, capture_output=True, timeout=60)


def as_config(value):
    """(config, how) if value is a config or a fragment of one, else None."""
    if not isinstance(value, dict) or not value:
        return None
    keys = set(value)
    if keys <= TOP_KEYS:
        config = dict(value)
        config.setdefault("endpoints", [{"path": "/ws"}])
        return config, "config" if "endpoints" in value else "config fragment"
    if "path" in keys and keys <= ENDPOINT_KEYS:
        return {"endpoints": [value]}, "endpoint"
    if keys == {"upstream"}:
        return {"endpoints": [{"path": "/ws", "upstream": value["upstream"]}]}, "upstream"
    return None


def stub_scripts(ctx, text, folder):
    """A config saved by a file mark: every relative script it names that
    does not exist gets a stub (`return {}`) in the page's folder."""
    try:
        config = json.loads(text)
    except ValueError:
        return
    endpoints = config.get("endpoints", []) if isinstance(config, dict) else []
    for ep in endpoints:
        script = ep.get("script") if isinstance(ep, dict) else None
        if not isinstance(script, str) or not script or os.path.isabs(script):
            continue
        path = os.path.join(ctx.tmp, folder, script)
        if not os.path.realpath(path).startswith(os.path.realpath(ctx.tmp) + os.sep):
            continue  # never write outside the scratch folder
        if not os.path.exists(path):
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as f:
                f.write("return {}\n")


def check_config(ctx, block, config, how):
    with tempfile.TemporaryDirectory(dir=ctx.tmp) as folder:
        for ep in config.get("endpoints", []):
            script = ep.get("script") if isinstance(ep, dict) else None
            if isinstance(script, str) and script and not os.path.isabs(script):
                target = os.path.join(folder, script)
                known = ctx.files.get(script)
                os.makedirs(os.path.dirname(target), exist_ok=True)
                if known:
                    shutil.copy(known, target)
                elif not os.path.exists(os.path.join(ctx.tmp, script)):
                    with open(target, "w") as f:
                        f.write("return {}\n")
                else:
                    shutil.copy(os.path.join(ctx.tmp, script), target)
        for name in ("plugins", "scripts", "examples"):
            if not os.path.exists(os.path.join(folder, name)):
                os.symlink(os.path.join(ctx.tmp, name), os.path.join(folder, name))
        try:
            make_tls_files(config, folder)
        except (OSError, subprocess.SubprocessError, KeyError, TypeError) as e:
            c.check(False, "%s: TLS files for --check" % block.where, e)
            return False
        path = os.path.join(folder, "config.json")
        with open(path, "w", encoding="utf-8") as f:
            json.dump(config, f)
        r = subprocess.run([BINARY, "--check", "--config", path], capture_output=True, text=True,
                           timeout=30, env=base_env(jwt=True), cwd=folder)
        return c.check(r.returncode == 0, "%s: %s passes wsrelay --check" % (block.where, how),
                       (r.stdout + r.stderr).strip()[-800:] + "\n" + json.dumps(config)[:400])


def run_json(ctx, block):
    body = block.body.strip()
    if block.mark and block.mark.kind == "exchange":
        # JSON lines under an exchange mark: what one client receives, in order.
        run_exchange(ctx, block, "\n".join("\u2190 " + l for l in body.splitlines() if l.strip()))
        return
    value = None
    try:
        value = loads_doc(body)
    except ValueError:
        try:
            value = loads_doc("{" + body + "}")
        except ValueError:
            value = None
    found = as_config(value) if value is not None else None
    if found and (ELLIPSIS not in body):
        if check_config(ctx, block, *found):
            count(block.page, "run")
        return
    if block.mark and block.mark.kind == "response":
        check_response(ctx, block, value)
        return
    if block.mark and block.mark.kind == "upstream":
        check_upstream(ctx, block)
        return
    # JSON messages: one value, or one per line.
    bad = []
    for n, line in enumerate([] if value is not None else body.splitlines(), 1):
        if not line.strip():
            continue
        try:
            loads_doc(line)
        except ValueError as e:
            bad.append("line %d: %s: %s" % (n, e, line[:120]))
    if value is not None and not bad:
        bad = [] if isinstance(value, (dict, list)) else ["not an object"]
    c.check(not bad, "%s: JSON messages parse (one per line)" % block.where, "; ".join(bad))
    count(block.page, "parsed")


def shape_mismatch(expected, actual, where="$"):
    """None if actual has the doc's shape: the same keys (unless `…`), the
    same JSON types; values are not compared (they are live counters)."""
    if expected == ELLIPSIS:
        return None
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return "%s: expected an object, got %r" % (where, actual)
        keys = set(expected) - {ELLIPSIS}
        missing = sorted(keys - set(actual))
        extra = [] if ELLIPSIS in expected else sorted(set(actual) - keys)
        if missing or extra:
            return "%s: fields the server does not send: %s; fields the doc does not show: %s" % (
                where, missing, extra)
        for key in keys:
            sub = shape_mismatch(expected[key], actual[key], "%s.%s" % (where, key))
            if sub:
                return sub
        return None
    if isinstance(expected, list):
        if not isinstance(actual, list):
            return "%s: expected an array, got %r" % (where, actual)
        for i, (e, a) in enumerate(zip(expected, actual)):
            sub = shape_mismatch(e, a, "%s[%d]" % (where, i))
            if sub:
                return sub
        return None
    kinds = (bool, (int, float), str, type(None))
    for kind in kinds:
        if isinstance(expected, kind) and not (kind is not bool and isinstance(expected, bool)):
            ok = isinstance(actual, kind) and (kind is bool or not isinstance(actual, bool))
            return None if ok else "%s: expected a value like %r, got %r" % (where, expected, actual)
    return None


def check_response(ctx, block, expected):
    """<!-- sample: response GET /path -->: the page's server answers the
    request with JSON of the block's shape."""
    words = block.mark.words
    method, path = (words + ["GET", "/"])[:2] if len(words) >= 2 else ("GET", words[0] if words else "/")
    port = ctx.ensure_server()
    from wsrelay_harness import http_get
    if "path" in block.mark.args:
        open_live_session(ctx, port, block.mark.args["path"])
    status, _, body = http_get("127.0.0.1", port, path, method=method,
                               headers={"Authorization": "Bearer " + SECRETS["WSRELAY_ADMIN_TOKEN"]})
    try:
        actual = json.loads(body)
    except ValueError:
        actual = body
    problem = shape_mismatch(expected, actual) if status == 200 else "HTTP %d" % status
    c.check(problem is None, "%s: %s %s answers in the shape the doc shows" % (block.where, method, path),
            "%s\n  got: %s" % (problem, body[:1500]))
    count(block.page, "run")


# ---- lua ------------------------------------------------------------------------


def check_script(ctx, block, text, name, what):
    path = ctx.save(name, text)
    endpoint = "/sample"
    config = {"listen": {"port": 0}, "endpoints": [{"path": endpoint, "script": os.path.basename(path)}]}
    config.update(plugin_keys(ctx))
    cfg = os.path.join(os.path.dirname(path), name + ".json")
    with open(cfg, "w") as f:
        json.dump(config, f)
    r = subprocess.run([BINARY, "--check", "--config", cfg], capture_output=True, text=True,
                       timeout=30, env=base_env(), cwd=ctx.tmp)
    return r.returncode == 0, (r.stdout + r.stderr).strip()


def run_lua(ctx, block):
    first = block.body.split("\n", 1)[0]
    m = re.match(r"--\s*example:\s*(\S+\.lua)", first)
    name = m.group(1) if m else "sample-%d.lua" % block.line
    if block.mark and block.mark.kind == "fragment":
        body = "\n".join("  " + l for l in block.body.splitlines())
        wrapped = "local handlers = {}\nfunction handlers.sample(session, msg)\n%s\nend\nreturn handlers\n" % body
        ok, out = check_script(ctx, block, wrapped, "fragment-%d.lua" % block.line, "fragment")
        if not ok:
            wrapped = "local handlers = {}\nhandlers.http = {\n%s\n}\nreturn handlers\n" % body
            ok2, out2 = check_script(ctx, block, wrapped, "fragment-%d.lua" % block.line, "fragment")
            if ok2:
                ok, out = ok2, out2
        c.check(ok, "%s: fragment loads inside a handler (or as http routes)" % block.where, out[-600:])
        count(block.page, "fragment")
        return
    text = block.body
    if re.match(r"^(--[^\n]*\n)*(function handlers\.|handlers\.)", text) and "local handlers" not in text:
        # Entries of the handler table, as the reference shows them: loaded
        # as the whole table they belong to (so they are checked as handlers).
        text = "local handlers = {}\n" + text + "return handlers\n"
    ok, out = check_script(ctx, block, text, name, "script")
    c.check(ok, "%s: loads as an endpoint script (wsrelay --check)" % block.where, out[-600:])
    ctx.last_lua = name
    count(block.page, "run")


# ---- c -------------------------------------------------------------------------


def plugin_keys(ctx):
    if not ctx.extensions:
        return {}
    return {"plugin_dirs": ["myplugins"], "extensions": list(ctx.extensions)}


def run_c_plugin(ctx, block):
    """<!-- sample: plugin libNAME.so -->: the block compiles as a plugin, and
    wsrelay --check loads it (an extension: enabled for later lua blocks)."""
    name = block.mark.words[0]
    folder = os.path.join(ctx.tmp, "myplugins")
    os.makedirs(folder, exist_ok=True)
    src = ctx.save("src/%s.c" % name, block.body)
    lws = subprocess.run(["pkg-config", "--cflags", "libwebsockets"], capture_output=True, text=True).stdout.split()
    r = subprocess.run(["cc", "-shared", "-fPIC", "-fvisibility=hidden", "-Wall", "-Werror",
                        "-I", os.path.join(SOURCE, "include")] + lws +
                       ["-o", os.path.join(folder, name), src], capture_output=True, text=True, timeout=60)
    if not c.check(r.returncode == 0, "%s: compiles as %s" % (block.where, name), r.stderr[-800:]):
        return
    config = {"plugin_dirs": ["myplugins"], "endpoints": [{"path": "/ws"}]}
    ext = re.search(r'WSRELAY_PLUGIN_HEADER\("([\w-]+)"\)', block.body)
    if ext:
        config["extensions"] = [ext.group(1)]
    else:
        names = re.findall(r'\{\s*"([\w-]+)",\s*callback_', block.body)
        config["listen"] = {"port": 0, "protocols": names}
    cfg = ctx.save("plugin-%d.json" % block.line, json.dumps(config))
    r = subprocess.run([BINARY, "--check", "--config", cfg], capture_output=True, text=True,
                       timeout=30, env=base_env(), cwd=ctx.tmp)
    if c.check(r.returncode == 0, "%s: wsrelay --check loads %s" % (block.where, name),
               (r.stdout + r.stderr)[-800:]) and ext:
        ctx.extensions.append(ext.group(1))
    count(block.page, "run")


# ---- log lines -------------------------------------------------------------------

TS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
PORT = re.compile(r"(?<=[\w\]]):\d{2,5}\b")


def normal_log(text):
    """A log line with what changes from run to run made constant."""
    text = TS.sub("TS", text)
    text = HEX16_IN.sub("SESSION", text)
    return PORT.sub(":PORT", text)


def check_log(ctx, block):
    """<!-- sample: log [FLAGS] -->: a relay started with FLAGS (the page's
    server otherwise), with one session that authenticates as alice,
    subscribes to lobby and closes with 1000, logs every line of the block
    (timestamps, session ids and ports aside; JSON lines field by field)."""
    env = base_env()
    # The pages show the log of a relay started as `make run` starts it: no
    # OPENAI_API_KEY, so the built-in config has no /assistant endpoint.
    env.pop("OPENAI_API_KEY", None)
    server = Server(BINARY, ctx.server_args + block.mark.words, env=env, cwd=ctx.tmp).start()
    try:
        async def session():
            async with websockets.connect(server.url("/ws")) as ws:
                await ws.recv()
                for msg in ({"type": "auth", "id": 1, "token": "alice"},
                            {"type": "subscribe", "id": 2, "channel": "lobby"}):
                    await ws.send(json.dumps(msg))
                    await ws.recv()
        asyncio.run(asyncio.wait_for(session(), 10))
        time.sleep(0.3)
    finally:
        server.stop()
    logged = [normal_log(l) for l in server.stderr_lines]
    for line in block.body.splitlines():
        if not line.strip():
            continue
        want = normal_log(line.strip())
        if want.startswith("{"):
            expected = json.loads(want)
            found = False
            for got in logged:
                try:
                    found = mismatch(expected, json.loads(got)) is None
                except ValueError:
                    continue
                if found:
                    break
        else:
            found = want in logged
        c.check(found, "%s: the relay logs %s" % (block.where, line.strip()), "\n".join(server.stderr_lines[-10:]))
    count(block.page, "run")


# ---- ini (systemd units), nginx ------------------------------------------------


def run_quiet(ctx, block, argv, what):
    r = subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd=ctx.tmp)
    out = (r.stdout + r.stderr).strip()
    c.check(r.returncode == 0 and not out, "%s: %s" % (block.where, what), "exit %d: %s" % (r.returncode, out[-800:]))
    count(block.page, "run")


def run_systemd_unit(ctx, block):
    """A systemd unit: `systemd-analyze verify` (the installed binary path is
    the built one) must accept it without a word."""
    tool = shutil.which("systemd-analyze")
    if not tool:
        count(block.page, "skip", "systemd-analyze is not installed")
        return
    path = ctx.save("units/wsrelay.service", block.body.replace("/usr/local/bin/wsrelay", BINARY))
    run_quiet(ctx, block, [tool, "verify", "--man=no", path], "systemd-analyze verify accepts the unit")


def run_nginx(ctx, block):
    """An nginx site: `nginx -t` accepts it inside an http block, with
    self-signed files for its certificates."""
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
    if not nginx:
        count(block.page, "skip", "nginx is not installed")
        return
    folder = os.path.join(ctx.tmp, "nginx")
    os.makedirs(folder, exist_ok=True)
    cert, key = self_signed_cert(folder)
    site = re.sub(r"(ssl_certificate_key\s+)\S+;", lambda m: m.group(1) + key + ";", block.body)
    site = re.sub(r"(ssl_certificate\s+)\S+;", lambda m: m.group(1) + cert + ";", site)
    ctx.save("nginx/site.conf", site)
    temp = " ".join("%s_temp_path %s;" % (k, folder) for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    conf = ctx.save("nginx/nginx.conf", "pid %s/nginx.pid;\nerror_log %s/error.log;\nevents {}\n"
                    "http { access_log off; %s include %s/site.conf; }\n" % (folder, folder, temp, folder))
    r = subprocess.run([nginx, "-t", "-q", "-c", conf, "-p", folder + "/"], capture_output=True, text=True, timeout=60)
    c.check(r.returncode == 0, "%s: nginx -t accepts the site" % block.where, (r.stdout + r.stderr)[-800:])
    count(block.page, "run")


def run_prometheus(ctx, block):
    """A Prometheus scrape config: it parses, and each target's metrics_path
    on the page's server answers in the Prometheus text format."""
    try:
        import yaml
    except ImportError:
        count(block.page, "skip", "python3-yaml is not installed")
        return
    from wsrelay_harness import http_get
    config = yaml.safe_load(block.body)
    jobs = config.get("scrape_configs", []) if isinstance(config, dict) else []
    c.check(jobs, "%s: scrape_configs has a job" % block.where, config)
    for job in jobs:
        path = job.get("metrics_path", "/metrics")
        for static in job.get("static_configs", []):
            for target in static.get("targets", []):
                host, _, port = target.rpartition(":")
                actual = ctx.port_map().get(int(port)) or (ctx.ensure_server() if int(port) == ctx.doc_port else None)
                if not c.check(actual, "%s: target %s is a server of the page" % (block.where, target)):
                    continue
                status, headers, body = http_get("127.0.0.1", actual, path)
                c.check(status == 200 and "text/plain" in headers.get("content-type", "") and "# TYPE wsrelay_" in body,
                        "%s: %s%s answers in the Prometheus text format" % (block.where, target, path),
                        (status, headers.get("content-type"), body[:200]))
    count(block.page, "run")


# ---- exchanges --------------------------------------------------------------------

LINE = re.compile(r"^\s*(?:([A-Za-z][\w-]*)\s+)?([\u2192\u2190])\s?(.*)$")


def exchange_lines(body):
    lines = []
    for raw in body.splitlines():
        m = LINE.match(raw)
        if m:
            lines.append((m.group(1) or "client", m.group(2) == "\u2192", m.group(3).rstrip(), raw))
    return lines


def sign_elided_jwts(text):
    """A token shown as header.payload.… gets a real HS256 signature."""
    def sign(m):
        signing_input = (m.group(1) + "." + m.group(2)).encode()
        sig = hmac.new(JWT_SECRET.encode(), signing_input, hashlib.sha256).digest()
        return "%s.%s.%s" % (m.group(1), m.group(2), base64.urlsafe_b64encode(sig).rstrip(b"=").decode())
    return re.subn(r"([A-Za-z0-9_-]{8,})\.([A-Za-z0-9_-]{8,})\.\u2026", sign, text)


async def drain(ws, quiet=0.3):
    frames = []
    while True:
        try:
            frames.append(await asyncio.wait_for(ws.recv(), quiet))
        except asyncio.TimeoutError:
            return frames


EPOCH = re.compile(r"^[0-9a-f]{12}$")


def bind_epochs(expected, actual, epochs):
    """expected with each "epoch" the doc shows (12 hex characters) replaced
    by the server's: bound the first time it is received (unless another
    epoch of the doc already stands for that one: then it mismatches)."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        out = {}
        for key, value in expected.items():
            if key == "epoch" and isinstance(value, str) and EPOCH.match(value) and isinstance(actual.get(key), str):
                # One stream, one epoch: two epochs the doc tells apart must differ on the server too.
                if value in epochs or actual[key] not in epochs.values():
                    value = epochs.setdefault(value, actual[key])
            elif key in actual:
                value = bind_epochs(value, actual[key], epochs)
            out[key] = value
        return out
    if isinstance(expected, list) and isinstance(actual, list):
        return [bind_epochs(e, a, epochs) for e, a in zip(expected, actual)] + expected[len(actual):]
    return expected


async def replay(url_for, lines, after, what):
    clients = {}
    epochs = {}         # epoch shown in the doc -> the server's
    skipping = set()
    try:
        for n, (who, outgoing, payload, raw) in enumerate(lines, 1):
            step = "%s, line %d: %s" % (what, n, raw.strip())
            if who not in clients:
                ws = await asyncio.wait_for(websockets.connect(url_for(who), max_size=None, close_timeout=2), 5)
                clients[who] = ws
                if outgoing or after:
                    await drain(ws, 0.5)  # what the server sends on open; the block does not show it
                for message in after:
                    await ws.send(json.dumps(message).replace("{client}", who))
                    answer = json.loads(await asyncio.wait_for(ws.recv(), 5))
                    if not c.check(answer.get("type") != "error", "%s: %s: setup %s" % (what, who, message), answer):
                        return
            ws = clients[who]
            close = re.fullmatch(r"close (\d{4})", payload)
            if outgoing:
                if close:
                    await asyncio.wait_for(ws.close(int(close.group(1))), 5)
                elif payload.startswith("{"):
                    value, _ = raw_decode_doc(payload)
                    text = json.dumps(value)
                    for shown, real in epochs.items():
                        text = text.replace('"%s"' % shown, '"%s"' % real)
                    await ws.send(text)
                else:
                    await ws.send(payload)
                continue
            if payload.startswith(ELLIPSIS):
                skipping.add(who)  # `← …`: any number of frames before the next line's
                continue
            if close:
                try:
                    await asyncio.wait_for(ws.wait_closed(), 5)
                except asyncio.TimeoutError:
                    pass
                if not c.equal(ws.close_code, int(close.group(1)), step):
                    return
                continue
            deadline = time.monotonic() + 10
            while True:
                try:
                    frame = await asyncio.wait_for(ws.recv(), max(0.1, deadline - time.monotonic()))
                except (asyncio.TimeoutError, websockets.ConnectionClosed) as e:
                    c.check(False, step, "no frame: %r" % e)
                    return
                if payload.lstrip().startswith("{"):
                    expected, _ = raw_decode_doc(payload)
                    try:
                        actual = json.loads(frame)
                    except (TypeError, ValueError):
                        actual = frame
                    bound = dict(epochs)  # kept only if the frame matches
                    problem = mismatch(bind_epochs(expected, actual, bound), actual)
                    if problem is None:
                        epochs.update(bound)
                else:
                    problem = None if frame == payload else "expected %r" % payload
                if problem is None or who not in skipping:
                    break
            skipping.discard(who)
            if not c.check(problem is None, step, "%s\n  got: %s" % (problem, frame)):
                return
        for who, ws in clients.items():
            if ws.open:
                extra = await drain(ws, 0.3)
                c.check(not extra, "%s: %s gets nothing the doc does not show" % (what, who), extra)
    finally:
        for ws in clients.values():
            try:
                await asyncio.wait_for(ws.close(), 3)
            except Exception:  # noqa: BLE001
                pass


def run_exchange(ctx, block, body=None):
    mark = block.mark if block.mark and block.mark.kind == "exchange" else None
    args = mark.args if mark else {}
    body, signed = sign_elided_jwts(block.body if body is None else body)
    lines = exchange_lines(body)
    server_args = list(ctx.server_args)
    path = args.get("path")
    if args.get("server") and args["server"] != "default":
        server_args = ["--config", ctx.files.get(args["server"]) or os.path.join(SOURCE, args["server"])]
    elif args.get("server") == "default":
        server_args = []
    if "script" in args:
        script = ctx.last_lua if args["script"] == "above" else args["script"]
        endpoint = args.get("endpoint", path or "/ws")
        config = {"endpoints": [{"path": endpoint, "script": os.path.basename(ctx.files[script])}]}
        config.update(plugin_keys(ctx))
        cfg = ctx.save("exchange-%d.json" % block.line, json.dumps(config))
        server_args = ["--config", cfg]
    if path is None:
        path = "/ws"
        if server_args:
            try:
                with open(server_args[1], encoding="utf-8") as f:
                    eps = json.load(f)["endpoints"]
                if "{" not in eps[0]["path"]:
                    path = eps[0]["path"]
            except (OSError, ValueError, KeyError, IndexError, TypeError):
                pass
    try:
        with Server(BINARY, server_args, env=base_env(jwt=signed > 0), cwd=ctx.tmp) as server:
            asyncio.run(asyncio.wait_for(
                replay(lambda who: server.url(path), lines, mark.after if mark else [], block.where), 60))
    except ServerError as e:
        c.check(False, "%s: server for the exchange" % block.where, e)
    except Exception as e:  # noqa: BLE001
        c.error("%s: exchange" % block.where, e)
    count(block.page, "run")


# ---- sh -------------------------------------------------------------------------


def commands(body):
    """Commands of a shell block: continuation lines joined, a heredoc kept
    with its command, comment-only and blank lines dropped. Each command
    comes with the comment lines right above it."""
    out = []
    lines = body.splitlines()
    i = 0
    comment = []
    while i < len(lines):
        line = lines[i]
        i += 1
        if not line.strip():
            comment = []
            continue
        if line.strip().startswith("#"):
            comment.append(line.strip()[1:].strip())
            continue
        while line.endswith("\\") and i < len(lines):
            line = line[:-1] + " " + lines[i].strip()
            i += 1
        m = re.search(r"<<-?\s*'?(\w+)'?", line)
        if m:
            end = m.group(1)
            while i < len(lines):
                line += "\n" + lines[i]
                i += 1
                if lines[i - 1].strip() == end:
                    break
        out.append((line, " ".join(comment)))
        comment = []
    return out


def shown_output(comment):
    """The JSON a comment above a command shows as its output
    (`# what it does: {...}`), or None."""
    m = re.search(r":\s*(\{.*\})\s*$", comment)
    if not m:
        return None
    try:
        return loads_doc(m.group(1))
    except ValueError:
        return None


def substitute(ctx, cmd):
    cmd = re.sub(r"\$\(pidof wsrelay\)|`pidof wsrelay`",
                 " ".join(str(p.proc.pid if isinstance(p, Server) else p.pid)
                          for _, p, _ in ctx.servers if isinstance(p, Server)) or "0", cmd)
    cmd = re.sub(r"^sudo -u \w+ ", "", cmd)  # the test runs as itself
    cmd = re.sub(r"(?<![\w/.-])(?:\./build/wsrelay|build/wsrelay|/usr/local/bin/wsrelay|wsrelay)(?=\s|$)",
                 BINARY, cmd)
    cmd = re.sub(r"(?<![\w/.-])(?:/usr/bin/python3|python3)(?=\s)", PYTHON, cmd)
    for name, path in ctx.files.items():
        if name.startswith("/"):
            cmd = re.sub(r"(?<![\w/.-])%s(?![\w/.-])" % re.escape(name), path, cmd)
    for name, value in SECRETS.items():
        cmd = re.sub(r"\b%s=(?:sk-)?\.\.\.(?=\s|$)" % name, "%s=%s" % (name, value), cmd)
    for doc_port, actual in ctx.port_map().items():
        cmd = re.sub(r"(127\.0\.0\.1|localhost):%d\b" % doc_port, "127.0.0.1:%d" % actual, cmd)
    if ctx.live_ids:
        cmd = re.sub(r"(?<![0-9a-f])[0-9a-f]{16}(?![0-9a-f])", ctx.live_ids[-1], cmd)
    return cmd


def open_live_session(ctx, port, path="/ws"):
    """A WebSocket session held open for the admin samples to list and close;
    its id comes from GET /admin/sessions."""
    from wsrelay_harness import http_get
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(("GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % (path, port, key)).encode())
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(4096)
    ctx.live.append(sock)
    from wsrelay_harness import parse_frames, ws_frame, OP_TEXT
    rest = data.split(b"\r\n\r\n", 1)[1]

    def frames_read(n):
        """The first n frames of the session (fewer if none come for a while)."""
        nonlocal rest
        try:
            while len(parse_frames(rest)) < n:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                rest += chunk
        except OSError:
            pass
        return parse_frames(rest)

    # A relay on the standard protocol sends its welcome at once; a server
    # that sends none is given up on after this long. (It was 1 s, which a
    # loaded machine can spend before the welcome arrives: the session then
    # stayed anonymous and /admin/sessions showed "user": null, not a string.)
    sock.settimeout(10)
    try:
        welcome = json.loads(frames_read(1)[0][2])
    except (IndexError, ValueError):
        welcome = {}
    if isinstance(welcome, dict) and welcome.get("protocol") == "wsrelay.v1":
        # As in the docs' examples: alice, in lobby. Their replies are read,
        # so /admin/sessions below shows the session signed in and subscribed.
        for msg in ({"type": "auth", "id": 1, "token": "alice"}, {"type": "subscribe", "id": 2, "channel": "lobby"}):
            sock.sendall(ws_frame(OP_TEXT, json.dumps(msg)))
        frames_read(3)
    status, _, body = http_get("127.0.0.1", port, "/admin/sessions",
                               headers={"Authorization": "Bearer " + SECRETS["WSRELAY_ADMIN_TOKEN"]})
    sessions = json.loads(body).get("sessions", []) if status == 200 else []
    if sessions:
        ctx.live_ids.append(sessions[-1]["id"])


def start_background(ctx, block, cmd):
    """Starts a server command; returns True if it was one."""
    words = shlex.split(cmd.split(" #", 1)[0].rstrip().rstrip("&"))
    env = base_env()
    while words and re.match(r"^[A-Za-z_]\w*=", words[0]):
        k, _, v = words.pop(0).partition("=")
        env[k] = v
    if not words:
        return False
    prog = words[0]
    args = words[1:]
    if prog == BINARY and not ({"--check", "--help", "-h", "--version"} & set(args)):
        doc_port = None
        if "--port" in args:
            i = args.index("--port")
            doc_port = int(args[i + 1])
            del args[i:i + 2]
        elif "--config" in args:
            doc_port = config_port(os.path.join(ctx.tmp, args[args.index("--config") + 1]))
        server = Server(BINARY, args, env=env, cwd=ctx.tmp).start()
        ctx.add_server(doc_port or 8000, server, server.port)
        return True
    if os.path.basename(prog) == "embed_host":
        port = free_port()
        doc_port = 7681
        if "--port" in args:
            i = args.index("--port")
            doc_port = int(args[i + 1])
            args[i + 1] = str(port)
        proc = subprocess.Popen([os.path.join(ctx.tmp, prog)] + args, cwd=ctx.tmp, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        ctx.add_server(doc_port, proc, port)
        return True
    return False


RUNNABLE = {"curl", "cp", "echo", "env", "export", "kill", "openssl", "cat", "jq", "cc", "test", "true"}


def command_word(cmd):
    """The program a command line runs (after NAME=value assignments)."""
    try:
        words = shlex.split(cmd.split("\n", 1)[0].split(" #", 1)[0].replace("$(", "").replace(")", ""))
    except ValueError:
        return ""
    while words and re.match(r"^[A-Za-z_]\w*=", words[0]):
        words.pop(0)
    return words[0] if words else ""


def client_url(ctx, cmd):
    """examples/X/client.py connects to its default URL: give it --url with
    the port of the page's server."""
    m = re.search(r"(examples/[\w-]+/client\.py)", cmd)
    if not m or "--url" in cmd:
        return cmd
    with open(os.path.join(SOURCE, m.group(1)), encoding="utf-8") as f:
        d = re.search(r'"--url",\s*default="(ws://[^"]+)"', f.read())
    if not d:
        return cmd
    url = d.group(1)
    port = int(re.search(r":(\d+)", url).group(1))
    actual = ctx.port_map().get(port) or ctx.port_map().get(ctx.doc_port) or ctx.ensure_server()
    url = re.sub(r"//[^/]+", "//127.0.0.1:%d" % actual, url, count=1)
    return cmd.replace(m.group(1), "%s --url %s" % (m.group(1), url), 1)


def run_sh(ctx, block):
    ok = True
    for cmd, comment in commands(block.body):
        first = cmd.split("\n", 1)[0]
        if re.match(r"^cmake (-S \. -B build(\s|$)|--build build(\s|$))", first):
            continue  # this tree's build: the test runs on it
        cmd = substitute(ctx, cmd)
        prog = command_word(cmd)
        if start_background(ctx, block, cmd):
            continue
        if prog and prog not in (BINARY, PYTHON) and prog not in RUNNABLE:
            c.check(False, "%s: `%s` is not run by the test (only %s); mark the block "
                    "<!-- sample: skip (reason) -->" % (block.where, first, ", ".join(sorted(RUNNABLE | {"wsrelay", "python3"}))))
            ok = False
            break
        if re.search(r"(127\.0\.0\.1|localhost):%d\b" % ctx.doc_port, cmd) or "client.py" in cmd:
            ctx.ensure_server()
            cmd = substitute(ctx, cmd)
        cmd = client_url(ctx, cmd)
        if "/admin/" in cmd and not ctx.live_ids:
            port = re.search(r"127\.0\.0\.1:(\d+)/admin/", cmd)
            if port:
                open_live_session(ctx, int(port.group(1)))
                cmd = substitute(ctx, cmd)
        cmd = re.sub(r"(?<![\w-])curl(?=\s)", "curl -sS --fail", cmd)
        env = base_env()
        env["HOME"] = ctx.tmp
        proc = subprocess.Popen(["bash", "-e", "-o", "pipefail", "-c", cmd], cwd=ctx.tmp, env=env,
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, start_new_session=True)
        try:
            out, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.communicate()
            c.check(False, "%s: `%s` finishes within 60 s" % (block.where, first))
            ok = False
            break
        if VERBOSE:
            print("$ %s\n%s%s" % (cmd, out, err), flush=True)
        if not c.check(proc.returncode == 0, "%s: `%s` exits 0" % (block.where, first),
                       "exit %d\n%s\n%s" % (proc.returncode, out[-600:], err[-600:])):
            ok = False
            break
        if not c.check(not re.search(r'"type": ?"error"', out), "%s: `%s` shows no error reply" % (block.where, first),
                       out[-600:]):
            ok = False
            break
        shown = shown_output(comment)
        if shown is not None:
            try:
                problem = shape_mismatch(shown, json.loads(out))
            except ValueError:
                problem = "not JSON"
            c.check(problem is None, "%s: `%s` answers as the comment above it shows" % (block.where, first),
                    "%s\n  got: %s" % (problem, out[-600:]))
    count(block.page, "run")
    return ok


# ---- the pages ---------------------------------------------------------------------


def run_block(ctx, block):
    mark = block.mark
    if mark and mark.problem():
        c.check(False, "%s: %s" % (block.where, mark.problem()))
        return
    if mark and mark.kind == "skip":
        count(block.page, "skip", mark.reason)
        return
    if mark and mark.kind == "log":
        check_log(ctx, block)
        return
    lang = block.lang.split()[0] if block.lang else ""
    if lang == "json":
        run_json(ctx, block)
    elif lang == "lua":
        run_lua(ctx, block)
    elif lang in ("", "text", "console"):
        if exchange_lines(block.body):
            run_exchange(ctx, block)
        else:
            count(block.page, "output")
    elif lang in ("sh", "bash", "shell"):
        run_sh(ctx, block)
    elif lang == "ini" and "[Service]" in block.body:
        run_systemd_unit(ctx, block)
    elif lang == "nginx":
        run_nginx(ctx, block)
    elif lang == "yaml" and "scrape_configs" in block.body:
        run_prometheus(ctx, block)
    elif lang == "c" and mark and mark.kind == "plugin":
        run_c_plugin(ctx, block)
    elif mark and mark.kind == "fragment":
        count(block.page, "fragment")  # not lua: shown as part of something larger, nothing to load
    else:
        c.check(False, "%s: no runner for ```%s: mark it <!-- sample: skip (reason) -->" % (block.where, lang))
        return


UPSTREAM_RECORD = os.path.join(tempfile.mkdtemp(prefix="docs-samples-upstream-"), "record.jsonl")


def upstream_frames():
    """What the fake OpenAI received so far: {connection: [frame text, ...]}."""
    frames = {}
    try:
        with open(UPSTREAM_RECORD, encoding="utf-8") as f:
            for line in f:
                event = json.loads(line)
                if event.get("event") == "recv" and not event.get("binary"):
                    frames.setdefault(event.get("conn"), []).append(event["data"])
    except (OSError, ValueError):
        pass
    return frames


def check_upstream(ctx, block):
    """<!-- sample: upstream -->: the block's lines are what the relay sends
    upstream for a message; some connection of the fake OpenAI must have
    received them, one after another, after the page's earlier samples ran."""
    expected = [loads_doc(l) for l in block.body.splitlines() if l.strip()]
    best = None
    for conn, texts in upstream_frames().items():
        got = []
        for t in texts:
            try:
                got.append(json.loads(t))
            except ValueError:
                got.append(t)
        for start in range(len(got) - len(expected) + 1):
            problems = [mismatch(e, a) for e, a in zip(expected, got[start:start + len(expected)])]
            if not any(problems):
                c.check(True, block.where)
                count(block.page, "run")
                return
            if got[start:start + 1] and isinstance(got[start], dict) and got[start].get("type") == expected[0].get("type"):
                best = [p for p in problems if p]
    c.check(False, "%s: the fake OpenAI received these frames in this order" % block.where,
            best or "no connection got a %r" % expected[0].get("type"))
    count(block.page, "run")


def start_fake_openai():
    """tests/upstream/fake_realtime.py stands in for OpenAI's Realtime API."""
    proc = subprocess.Popen([PYTHON, os.path.join(SOURCE, "tests", "upstream", "fake_realtime.py"),
                             "--record", UPSTREAM_RECORD],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = proc.stdout.readline().strip()
    if not line.startswith("READY "):
        raise RuntimeError("fake_realtime.py: %r" % line)
    SECRETS["OPENAI_REALTIME_URL"] = line.split()[1] + "/v1/realtime?model=gpt-realtime"
    SECRETS["WSRELAY_ASSISTANT_URL"] = SECRETS["OPENAI_REALTIME_URL"]
    return proc


def main():
    only = os.environ.get("DOCS_SAMPLES_PAGE")  # e.g. docs/protocol.md, for working on one page
    fake = start_fake_openai()
    try:
        return run_pages(only)
    finally:
        fake.stdin.close()
        fake.terminate()
        fake.wait(5)
        shutil.rmtree(os.path.dirname(UPSTREAM_RECORD), ignore_errors=True)


def run_pages(only):
    for page in docs_samples.pages(SOURCE):
        if only and page != only:
            continue
        ctx = Page(page)
        try:
            blocks = docs_samples.page_blocks(SOURCE, page)
            stats.setdefault(page, {"run": 0, "parsed": 0, "output": 0, "fragment": 0, "skip": []})
            for block in blocks:
                if block.mark and block.mark.kind == "file" and not block.mark.problem():
                    ctx.save(block.mark.words[0], block.body)
                    stub_scripts(ctx, block.body, os.path.dirname(block.mark.words[0]))
            for block in blocks:
                try:
                    run_block(ctx, block)
                except Exception as e:  # noqa: BLE001
                    c.error(block.where, e)
        finally:
            ctx.close()
    print("\nblocks per page: run / fragment (loaded) / JSON messages (parsed) / output (not run) / skip")
    for page, s in stats.items():
        print("  %-36s %3d run %3d fragment %3d parsed %3d output %3d skip" % (
            page, s["run"], s["fragment"], s["parsed"], s["output"], len(s["skip"])))
        for reason in s["skip"]:
            print("      skip: %s" % reason)
    return c.report()


if __name__ == "__main__":
    sys.exit(main())
