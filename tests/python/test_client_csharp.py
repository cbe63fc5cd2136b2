#!/usr/bin/python3
"""Live test of the C# (Unity) client (examples/clients/csharp/WsRelayClient.cs).

    /usr/bin/python3 tests/python/test_client_csharp.py <wsrelay> <source-dir>

Compiles WsRelayClient.cs with the console harness (Harness.cs) using Mono's
`mcs`, starts the relay on a free port it picks itself, and runs
`mono Harness.exe test URL`, serving its control lines
(tests/clients/relay_control.py: stop the relay, start it again on the same
port, freeze and thaw it, publish a numbered stream to the history channel
hist1 from a plain WebSocket and cut the client's socket in the middle).

Needs Debian's mono-mcs and mono-runtime. If they are missing and this runs as
root, they are installed with apt-get (WSRELAY_NO_APT_INSTALL=1: never);
otherwise the test fails, or is skipped (exit 0 with a note) when
WSRELAY_SKIP_MISSING_TOOLS=1 is set.
"""

import os
import shutil
import subprocess
import sys
import tempfile

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "clients"))

from relay_control import Relay, run_controlled  # noqa: E402
from wsrelay_harness import Checker, usage_args  # noqa: E402


def ensure_mono():
    """(mcs, mono) paths, installing Debian's packages as root if needed; None if unavailable."""
    mcs, mono = shutil.which("mcs"), shutil.which("mono")
    if mcs and mono:
        return mcs, mono
    if os.environ.get("WSRELAY_NO_APT_INSTALL") or os.geteuid() != 0 or not shutil.which("apt-get"):
        return None
    print("installing mono-mcs and mono-runtime with apt-get ...", flush=True)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in (["apt-get", "update"], ["apt-get", "install", "-y", "--no-install-recommends", "mono-mcs", "mono-runtime"]):
        proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600)
        if proc.returncode != 0:
            print("%s failed:\n%s" % (" ".join(cmd), proc.stdout[-3000:]), flush=True)
            return None
    mcs, mono = shutil.which("mcs"), shutil.which("mono")
    return (mcs, mono) if mcs and mono else None


def main():
    binary, source_dir = usage_args()
    checker = Checker()
    tools = ensure_mono()
    if tools is None:
        if os.environ.get("WSRELAY_SKIP_MISSING_TOOLS"):
            print("SKIP: mcs/mono not available (Debian: apt-get install mono-mcs mono-runtime)")
            return 0
        checker.check(False, "mcs and mono available (Debian: apt-get install mono-mcs mono-runtime; "
                             "or set WSRELAY_SKIP_MISSING_TOOLS=1 to skip)")
        return checker.report()
    mcs, mono = tools
    src = os.path.join(source_dir, "examples", "clients", "csharp")
    with tempfile.TemporaryDirectory(prefix="wsrelay-cs-") as tmp:
        exe = os.path.join(tmp, "Harness.exe")
        proc = subprocess.run([mcs, "-warnaserror+", "-out:" + exe,
                               os.path.join(src, "WsRelayClient.cs"), os.path.join(src, "Harness.cs")],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120)
        if not checker.equal(proc.returncode, 0, "mcs compiles WsRelayClient.cs + Harness.cs"):
            print(proc.stdout)
            return checker.report()
        # The client alone, as a library (what a Unity project gets).
        proc = subprocess.run([mcs, "-warnaserror+", "-target:library", "-out:" + os.path.join(tmp, "WsRelay.dll"),
                               os.path.join(src, "WsRelayClient.cs")],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120)
        checker.equal(proc.returncode, 0, "mcs compiles WsRelayClient.cs alone as a library")

        relay = Relay(binary)
        try:
            relay.up()
            print("relay on %s; running mono Harness.exe test" % relay.url, flush=True)
            code, lines = run_controlled([mono, "--debug", exe, "test", relay.url], relay, timeout=55)
            checker.equal(code, 0, "harness exit code")
            summary = [ln for ln in lines if ln.endswith(" failed") and " passed, " in ln]
            checker.check(summary and summary[-1].endswith(" 0 failed"), "harness summary", summary)
            for command in ("down", "up", "pause", "resume"):
                checker.check("@@ " + command in lines, "the harness exercised '%s'" % command)
            checker.check(any(ln.startswith("@@ publish ") and " kick=" in ln for ln in lines),
                          "the harness exercised 'publish ... kick=' (a stream cut in the middle)")
        finally:
            relay.close()
    return checker.report()


if __name__ == "__main__":
    sys.exit(main())
