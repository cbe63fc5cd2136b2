#!/usr/bin/python3
"""Live test of the JavaScript client (examples/clients/js/wsrelay.js).

    /usr/bin/python3 tests/python/test_client_js.py <wsrelay> <source-dir>

Starts the relay on a free port it picks itself (so it can restart it on the
same port), then runs tests/clients/js/test_wsrelay_client.mjs with node and
serves its control lines (tests/clients/relay_control.py: restart, freeze,
and a numbered stream to the history channel hist1 from a plain WebSocket
with the client's socket cut in the middle). No npm packages:
the client uses Node's built-in WebSocket (global in Node >= 22; Node 20/21
need --experimental-websocket, added here when needed). Without node the test
fails, or is skipped (exit 0 with a note) when WSRELAY_SKIP_MISSING_TOOLS=1.
"""

import os
import shutil
import subprocess
import sys

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "clients"))

from relay_control import Relay, run_controlled  # noqa: E402
from wsrelay_harness import Checker, usage_args  # noqa: E402


def node_command(node):
    """[node, flags...] that give the program a global WebSocket, or None."""
    for flags in ([], ["--experimental-websocket"]):
        try:
            out = subprocess.run([node] + flags + ["-e", "process.stdout.write(typeof WebSocket)"],
                                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, timeout=20,
                                 text=True).stdout
        except (OSError, subprocess.TimeoutExpired):
            continue
        if out == "function":
            return [node] + flags
    return None


def main():
    binary, source_dir = usage_args()
    checker = Checker()
    node = shutil.which("node")
    if node is None:
        if os.environ.get("WSRELAY_SKIP_MISSING_TOOLS"):
            print("SKIP: node not found; the JavaScript client test needs it")
            return 0
        checker.check(False, "node available (or set WSRELAY_SKIP_MISSING_TOOLS=1 to skip)")
        return checker.report()
    cmd = node_command(node)
    if not checker.check(cmd is not None, "node has a WebSocket (Node >= 22, or --experimental-websocket)"):
        return checker.report()
    script = os.path.join(source_dir, "tests", "clients", "js", "test_wsrelay_client.mjs")
    relay = Relay(binary)
    try:
        relay.up()
        print("relay on %s; running %s" % (relay.url, " ".join(cmd + [os.path.basename(script)])),
              flush=True)
        code, lines = run_controlled(cmd + [script, relay.url], relay, timeout=55)
        checker.equal(code, 0, "node test exit code")
        summary = [ln for ln in lines if ln.endswith(" failed") and " passed, " in ln]
        checker.check(summary and summary[-1].endswith(" 0 failed"), "node test summary", summary)
        for command in ("down", "up", "pause", "resume"):
            checker.check("@@ " + command in lines, "the node test exercised '%s'" % command)
        checker.check(any(ln.startswith("@@ publish ") and " kick=" in ln for ln in lines),
                      "the node test exercised 'publish ... kick=' (a stream cut in the middle)")
    finally:
        if relay.server is not None and not relay.server.alive():
            print("relay stderr:\n" + relay.stderr_text())
        relay.close()
    return checker.report()


if __name__ == "__main__":
    sys.exit(main())
