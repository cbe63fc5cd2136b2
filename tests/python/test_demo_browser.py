#!/usr/bin/python3
"""End-to-end test of the demo page (examples/demo/) in headless Chromium.

    /usr/bin/python3 tests/python/test_demo_browser.py <wsrelay> <source-dir>

What it does:
  1. makes sure the tools are there: Debian's chromium (/usr/bin/chromium),
     node >= 18 and, when tests/browser/node_modules is missing or stale, npm
     (then `npm ci` in tests/browser, from its package-lock.json). Missing
     Debian packages are installed with apt-get when running as root. Only if
     they cannot be had (not root, no network) is the test skipped: a "SKIP:"
     line and "0 passed, 0 failed", exit 0;
  2. starts the demo's relay as documented in examples/demo/README.md,
     `wsrelay --config examples/demo/config.json` (on --port 0): it serves
     examples/demo/ at / and its channels keep history, presence and
     join/leave; with WSRELAY_ADMIN_TOKEN set so the browser test can drop a
     session and watch the page reconnect and recover what it missed;
  3. starts the fake OpenAI upstream (tests/upstream/fake_realtime.py) and a
     plain `wsrelay --port 0` (the built-in default config) with
     OPENAI_API_KEY (a test key) and WSRELAY_ASSISTANT_URL (the fake), so it
     has the assistant endpoint /assistant, as `make run` with a key does;
     and a second plain relay without OPENAI_API_KEY (no assistant);
  4. runs tests/browser/demo.spec.mjs (playwright-core driving
     /usr/bin/chromium): two pages log in as ann and bob, see each other in
     the online list (and a third person come and go), join a channel, see
     each other typing and chatting, reconnect; ann is cut off while bob
     writes and afterwards has exactly his messages, in order, once each; a
     page on the assistant relay asks the panel a question and sees the
     fake's answer stream in, the plain relay's page has no panel and no
     online list, and a screenshot is saved to
     <build-dir>/demo-test/demo.png; after a run without failures it is
     copied to WSRELAY_DEMO_SCREENSHOT=<path> if set (e.g. docs/demo.png,
     the README's screenshot); by default a tracked file is left alone.

Environment: WSRELAY_CHROMIUM (default /usr/bin/chromium), and the two above.

Prints "N passed, M failed" at the end (the browser's checks included).
"""

import fcntl
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import time

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from wsrelay_harness import Checker, Server, ServerError, clean_env, http_get, usage_args  # noqa: E402

CHROMIUM = os.environ.get("WSRELAY_CHROMIUM") or "/usr/bin/chromium"  # Debian's
MIN_NODE = 18
SPEC_TIMEOUT = 180  # s, the browser test itself takes about 30 s (more under load)
ADMIN_TOKEN = "demo-browser-test-admin-token"
FAKE_KEY = "sk-demo-browser-test-key"


class Skip(Exception):
    """The tools cannot be had on this machine: skip, do not fail."""


def log(line):
    print(line, flush=True)


def is_root():
    return hasattr(os, "geteuid") and os.geteuid() == 0


def apt_install(packages, why):
    """Installs Debian packages as root; raises Skip when that is not possible."""
    if not is_root():
        raise Skip("%s; run as root (or: apt-get install -y %s)" % (why, " ".join(packages)))
    if not shutil.which("apt-get"):
        raise Skip("%s and there is no apt-get to install %s" % (why, " ".join(packages)))
    log("%s: installing %s with apt-get (once)" % (why, " ".join(packages)))
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    # A lock so that two test runs at once do not both call apt-get.
    with open(os.path.join(tempfile.gettempdir(), "wsrelay-demo-apt.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        for cmd in (["apt-get", "update", "-qq"],
                    ["apt-get", "install", "-y", "-qq"] + list(packages)):
            try:
                proc = subprocess.run(cmd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, timeout=900)
            except (OSError, subprocess.TimeoutExpired) as exc:
                raise Skip("%s: %s failed: %s" % (why, " ".join(cmd[:2]), exc))
            if proc.returncode != 0:
                tail = proc.stdout.decode("utf-8", "replace").strip().splitlines()[-5:]
                raise Skip("%s: `%s` failed (%d): %s" % (why, " ".join(cmd), proc.returncode, " | ".join(tail)))


def ensure_chromium():
    if not os.access(CHROMIUM, os.X_OK):
        apt_install(["chromium"], "%s is missing" % CHROMIUM)
    if not os.access(CHROMIUM, os.X_OK):
        raise Skip("%s is still missing after installing chromium" % CHROMIUM)


def node_major(node):
    try:
        out = subprocess.run([node, "-p", "process.versions.node"], stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, text=True, timeout=20).stdout.strip()
        return int(out.split(".")[0])
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return 0


def ensure_node():
    node = shutil.which("node")
    if node is None:
        apt_install(["nodejs", "npm"], "node is missing")
        node = shutil.which("node")
    if node is None:
        raise Skip("node is still missing after installing nodejs")
    major = node_major(node)
    if major < MIN_NODE:
        raise Skip("node %s is too old: playwright-core needs node >= %d" % (major, MIN_NODE))
    return node


def lock_version(browser_dir):
    with open(os.path.join(browser_dir, "package-lock.json")) as f:
        return json.load(f)["packages"]["node_modules/playwright-core"]["version"]


def installed_version(browser_dir):
    try:
        with open(os.path.join(browser_dir, "node_modules", "playwright-core", "package.json")) as f:
            return json.load(f).get("version")
    except (OSError, ValueError):
        return None


def ensure_node_modules(browser_dir):
    """`npm ci` in tests/browser unless playwright-core is there at the locked version."""
    want = lock_version(browser_dir)
    with open(os.path.join(tempfile.gettempdir(), "wsrelay-demo-npm.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two test runs at once: one installs, the other waits
        if installed_version(browser_dir) == want:
            return want
        if shutil.which("npm") is None:
            apt_install(["npm"], "npm is missing (needed once, to install playwright-core)")
        npm = shutil.which("npm")
        if npm is None:
            raise Skip("npm is still missing after installing it")
        log("installing playwright-core %s: npm ci in %s" % (want, browser_dir))
        env = dict(os.environ, PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD="1", npm_config_update_notifier="false")
        try:
            proc = subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=browser_dir,
                                  env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, timeout=600)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise Skip("npm ci failed: %s" % exc)
        out = proc.stdout.decode("utf-8", "replace").strip()
        if proc.returncode != 0:
            raise Skip("npm ci failed (%d; no access to the npm registry?): %s"
                       % (proc.returncode, " | ".join(out.splitlines()[-6:])))
        got = installed_version(browser_dir)
        if got != want:
            raise Skip("npm ci left playwright-core %s, expected %s" % (got, want))
        return want


def png_size(path):
    """(width, height) of a PNG file, or None."""
    try:
        with open(path, "rb") as f:
            head = f.read(24)
    except OSError:
        return None
    if len(head) < 24 or head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        return None
    return struct.unpack(">II", head[16:24])


def run_spec(cmd, cwd, env, timeout):
    """Runs the node test, echoing its output; returns (exit code, lines)."""
    log("running: %s" % " ".join(cmd))
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, errors="replace")
    lines = []

    def pump():
        for line in proc.stdout:
            line = line.rstrip("\n")
            lines.append(line)
            log("  | " + line)

    t = threading.Thread(target=pump, daemon=True)
    t.start()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        log("the browser test ran past %d s; killing it" % timeout)
        proc.kill()
        proc.wait(10)
    t.join(5)
    return proc.returncode, lines


def start_fake(source_dir):
    """The fake OpenAI Realtime upstream: (module, proc, url)."""
    sys.path.insert(0, os.path.join(source_dir, "tests", "upstream"))
    import fake_realtime as fr  # noqa: E402
    proc, url, _ = fr.start_fake(["--port", "0"])
    return fr, proc, url


def main():
    binary, source_dir = usage_args()
    checker = Checker()
    browser_dir = os.path.join(source_dir, "tests", "browser")
    spec = os.path.join(browser_dir, "demo.spec.mjs")
    started = time.monotonic()

    try:
        ensure_chromium()
        node = ensure_node()
        version = ensure_node_modules(browser_dir)
    except Skip as why:
        print("SKIP: the browser test of the demo page cannot run here: %s" % why)
        print("0 passed, 0 failed", flush=True)
        return 0
    log("chromium %s, node %s, playwright-core %s (tools ready after %.1f s)"
        % (CHROMIUM, subprocess.run([node, "--version"], stdout=subprocess.PIPE, text=True).stdout.strip(),
           version, time.monotonic() - started))

    # The test's own screenshot, in the build dir; copied to the README's
    # (docs/demo.png) only after a run without failures.
    shot = os.path.join(os.path.dirname(binary), "demo-test", "demo.png")
    if os.path.exists(shot):
        os.remove(shot)
    # Only on request: a test run must not rewrite a tracked file.
    readme_shot = os.environ.get("WSRELAY_DEMO_SCREENSHOT", "")

    relay = assist = plain = None
    fr = fake = None
    try:
        demo_config = os.path.join(source_dir, "examples", "demo", "config.json")
        relay = Server(binary, ["--config", demo_config], env=clean_env(
            {"WSRELAY_ADMIN_TOKEN": ADMIN_TOKEN},
            remove=("WSRELAY_JWT_SECRET", "WSRELAY_HOST", "OPENAI_API_KEY"))).start()
        fr, fake, fake_url = start_fake(source_dir)
        assist = Server(binary, env=clean_env({
            "OPENAI_API_KEY": FAKE_KEY,
            "WSRELAY_ASSISTANT_URL": fake_url + "/v1/realtime?model=gpt-realtime"},
            remove=("WSRELAY_JWT_SECRET", "WSRELAY_ASSISTANT_URL", "WSRELAY_ADMIN_TOKEN"))).start()
        plain = Server(binary, env=clean_env(remove=("WSRELAY_JWT_SECRET", "OPENAI_API_KEY"))).start()
        host, port = relay.connect_host(), relay.port
        page_url = "http://%s:%d/" % (host, port)

        # The demo's relay serves this tree's demo page (static "." in its config).
        status, headers, body = http_get(host, port, "/")
        checker.equal(status, 200, "GET / on the demo's relay")
        with open(os.path.join(source_dir, "examples", "demo", "index.html"), encoding="utf-8") as f:
            want_index = f.read()
        if not checker.check(body == want_index, "GET / is examples/demo/index.html of %s" % source_dir,
                             "the binary serves another folder (an installed copy?)"):
            return checker.report()
        for path, kind in (("/app.js", "text/javascript"), ("/wsrelay.js", "text/javascript"),
                           ("/style.css", "text/css")):
            status, headers, _ = http_get(host, port, path)
            checker.check(status == 200 and headers.get("content-type", "").startswith(kind),
                          "GET %s is %s" % (path, kind), (status, headers.get("content-type")))

        status, _, body = http_get(host, port, "/status")
        checker.equal(status, 200, "GET /status on the demo's relay")
        st = json.loads(body) if status == 200 else {}
        checker.equal([ep["path"] for ep in st.get("endpoints", [])], ["/ws"], "the demo's relay has /ws")
        checker.equal(st.get("recoveries"), {"recovered": 0, "not_recovered": 0},
                      "the demo's relay counts recoveries (channel memory is on)")
        status, _, body = http_get(assist.connect_host(), assist.port, "/status")
        paths = [ep["path"] for ep in json.loads(body)["endpoints"]] if status == 200 else []
        checker.equal(paths, ["/ws", "/assistant"], "with OPENAI_API_KEY a plain relay has /ws and /assistant")

        cmd = [node, spec, "--url", page_url, "--admin-token", ADMIN_TOKEN, "--chromium", CHROMIUM,
               "--screenshot", shot,
               "--assistant-url", "http://%s:%d/" % (assist.connect_host(), assist.port),
               "--plain-url", "http://%s:%d/" % (plain.connect_host(), plain.port)]
        env = dict(os.environ)
        env.setdefault("HOME", tempfile.gettempdir())
        code, lines = run_spec(cmd, browser_dir, env, SPEC_TIMEOUT)

        summary = [ln for ln in lines if ln.endswith(" failed") and " passed, " in ln]
        if checker.check(summary, "the browser test printed its 'N passed, M failed' line"):
            spec_passed, spec_failed = (int(part.split()[0]) for part in summary[-1].split(", "))
            checker.passed += spec_passed  # fold the browser's own checks into the total
            checker.failed += spec_failed
            if spec_failed:
                checker.failures.append("FAIL: %d check(s) in the browser test (see 'not ok' above)"
                                        % spec_failed)
        checker.equal(code, 0, "the browser test's exit code")
        size = png_size(shot)
        checker.check(size == (1200, 720), "screenshot %s is a 1200x720 PNG" % shot, size)
        checker.check(relay.alive(), "the demo's relay is still running after the browser test")
        status, _, body = http_get(host, port, "/status")
        st = json.loads(body) if status == 200 else {}
        rec = st.get("recoveries") or {}
        checker.check(rec.get("recovered", 0) >= 2 and rec.get("not_recovered", 0) >= 1,
                      "the demo's relay served the page's recoveries (recovered and not)", rec)
        checker.check(assist.alive(), "the assistant relay is still running after the browser test")
        checker.check(FAKE_KEY not in assist.stderr_text(), "the key is in no log line of the relay")
        if readme_shot and checker.failed == 0 and size is not None:
            try:
                os.makedirs(os.path.dirname(os.path.abspath(readme_shot)), exist_ok=True)
                shutil.copyfile(shot, readme_shot + ".tmp")
                os.replace(readme_shot + ".tmp", readme_shot)
                log("README screenshot updated: %s" % readme_shot)
            except OSError as exc:
                log("note: could not update the README screenshot %s: %s" % (readme_shot, exc))
    except ServerError as exc:
        checker.error("starting wsrelay", exc)
    finally:
        for server in (plain, assist, relay):
            if server is not None:
                if server.alive() is False and server.proc is not None:
                    log("wsrelay stderr:\n" + server.stderr_text())
                server.stop()
        if fake is not None:
            fr.stop_fake(fake)
    log("took %.1f s" % (time.monotonic() - started))
    return checker.report()


if __name__ == "__main__":
    sys.exit(main())
