#!/usr/bin/python3
"""cmake --install into a temporary prefix, then, against that installed tree
only: build the out-of-tree extension plugin examples/plugins/greeting (with
find_package(wsrelay) and with pkg-config), load it into the installed
binary, and build and run examples/embed-lws — the commands of their READMEs.

usage: test_install.py --build BUILD_DIR --source SOURCE_DIR
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
import threading
import time

import websockets

TIMEOUT = 5.0


class Checker:
    def __init__(self):
        self.passed, self.failed = 0, []

    def check(self, ok, what, detail=""):
        if ok:
            self.passed += 1
        else:
            self.failed.append(what)
            print("FAIL: %s %s" % (what, detail), flush=True)
        return ok

    def report(self):
        print("%d passed, %d failed" % (self.passed, len(self.failed)))
        return 1 if self.failed else 0


def run(c, what, argv, env=None, cwd=None):
    r = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=cwd, timeout=120)
    c.check(r.returncode == 0, what, "\n$ %s\n%s%s" % (" ".join(argv), r.stdout[-3000:], r.stderr[-3000:]))
    return r


class Relay:
    """The installed wsrelay on port 0 (the port from its 'listening on' line)."""

    def __init__(self, argv, env):
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        self.lines, self.port = [], None
        ready = threading.Event()

        def drain():
            for line in self.proc.stdout:
                self.lines.append(line.rstrip("\n"))
                m = re.search(r"listening on ws://[^ ]+:(\d+)", line)
                if m and self.port is None:
                    self.port = int(m.group(1))
                    ready.set()
            ready.set()

        self.thread = threading.Thread(target=drain, daemon=True)
        self.thread.start()
        ready.wait(20)

    def log(self):
        return "\n".join(self.lines)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.thread.join(5)
        return self.proc.returncode


async def greet(c, port, what):
    url = "ws://127.0.0.1:%d/ws" % port
    async with websockets.connect(url, open_timeout=TIMEOUT) as ws:
        welcome = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
        c.check(welcome.get("type") == "welcome", what + ": welcome", welcome)
        await ws.send(json.dumps({"type": "hello", "name": "ada"}))
        r = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
        c.check(r.get("text") == "Howdy, ada!" and r.get("count") == 1, what + ": relay.greeting from the plugin", r)
        await ws.send("/hello")
        r = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
        c.check(r == {"type": "greeting", "text": "Howdy from a plugin"}, what + ": the plugin's filter answers", r)


async def echo(c, port):
    async with websockets.connect("ws://127.0.0.1:%d/echo" % port, subprotocols=["wsrelay-echo"],
                                  open_timeout=TIMEOUT) as ws:
        await ws.send("installed echo")
        c.check(await asyncio.wait_for(ws.recv(), TIMEOUT) == "installed echo",
                "the installed echo protocol plugin answers")


def serve_and_check(c, what, binary, config, env, check):
    relay = Relay([binary, "--config", config], env)
    try:
        if not c.check(relay.port is not None, what + ": the installed wsrelay starts", relay.log()):
            return
        asyncio.run(check(relay.port))
    except Exception as e:  # a failed connection is a failed check, with the server's log
        c.check(False, what + ": " + repr(e), relay.log())
    finally:
        rc = relay.stop()
    c.check(rc == 0, what + ": stops cleanly", "rc=%s\n%s" % (rc, relay.log()))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", required=True)
    ap.add_argument("--source", required=True)
    args = ap.parse_args()
    c = Checker()
    tmp = tempfile.mkdtemp(prefix="wsrelay-install-")
    try:
        prefix = os.path.join(tmp, "prefix")
        run(c, "cmake --install", ["cmake", "--install", args.build, "--prefix", prefix])

        # What lands where. The libdir is "lib" for a prefix outside /usr.
        libdir = os.path.join(prefix, "lib")
        plugindir = os.path.join(libdir, "wsrelay", "plugins")
        for rel in ["bin/wsrelay", "lib/libwsrelay_core.so",
                    "lib/wsrelay/plugins/libprotocol_wsrelay.so",
                    "lib/wsrelay/plugins/libprotocol_wsrelay_echo.so",
                    "lib/wsrelay/plugins/libwsrelay_ext_jwt.so",
                    "include/wsrelay/plugin.h", "include/wsrelay/plugin_api.h", "include/wsrelay/wsrelay.h",
                    "share/wsrelay/scripts/standard.lua", "lib/pkgconfig/wsrelay.pc",
                    "lib/cmake/wsrelay/wsrelayConfig.cmake", "lib/cmake/wsrelay/wsrelayConfigVersion.cmake",
                    "lib/cmake/wsrelay/WsrelayPlugin.cmake"]:
            c.check(os.path.exists(os.path.join(prefix, rel)), "installed: " + rel)
        c.check(not os.path.exists(os.path.join(plugindir, "libwsrelay_ext_testext.so")),
                "test plugins are not installed")
        wsrelay = os.path.join(prefix, "bin", "wsrelay")
        r = run(c, "the installed binary runs", [wsrelay, "--version"])
        c.check(r.stdout.startswith("wsrelay "), "--version", r.stdout)

        # pkg-config, relocatable: paths follow the prefix it was found in.
        env = dict(os.environ, PKG_CONFIG_PATH=os.path.join(libdir, "pkgconfig"))
        env.pop("WSRELAY_JWT_SECRET", None)
        r = run(c, "pkg-config --cflags wsrelay", ["pkg-config", "--cflags", "wsrelay"], env=env)
        c.check("-I" in r.stdout and os.path.realpath(r.stdout.split()[0][2:]) == os.path.realpath(
            os.path.join(prefix, "include")), "pkg-config include dir is the prefix's", r.stdout)
        r = run(c, "pkg-config plugindir", ["pkg-config", "--variable=plugindir", "wsrelay"], env=env)
        c.check(os.path.realpath(r.stdout.strip()) == os.path.realpath(plugindir), "pkg-config plugindir", r.stdout)

        # The out-of-tree plugin with CMake: builds against the installed package
        # and installs into the installed wsrelay's plugin folder.
        greeting_src = os.path.join(args.source, "examples", "plugins", "greeting")
        gbuild = os.path.join(tmp, "greeting-cmake")
        run(c, "configure the out-of-tree plugin",
            ["cmake", "-S", greeting_src, "-B", gbuild, "-DCMAKE_PREFIX_PATH=" + prefix])
        run(c, "build the out-of-tree plugin", ["cmake", "--build", gbuild])
        run(c, "install the out-of-tree plugin", ["cmake", "--install", gbuild])
        c.check(os.path.exists(os.path.join(plugindir, "libwsrelay_ext_greeting.so")),
                "the plugin is in the installed plugin folder")

        # The same plugin with pkg-config and make (headers only).
        mbuild = os.path.join(tmp, "greeting-make")
        os.makedirs(mbuild)
        run(c, "make the plugin with pkg-config", ["make", "-C", greeting_src, "BUILD_DIR=" + mbuild], env=env)
        c.check(os.path.exists(os.path.join(mbuild, "libwsrelay_ext_greeting.so")), "pkg-config build output")

        script = os.path.join(tmp, "greeting.lua")
        shutil.copy(os.path.join(greeting_src, "greeting.lua"), script)

        # 1. Found in the installed plugin folder by default (no plugin_dirs),
        #    beside the installed echo protocol plugin.
        config = os.path.join(tmp, "installed.json")
        with open(config, "w") as f:
            json.dump({"listen": {"host": "127.0.0.1", "port": 0, "protocols": ["wsrelay-echo"]},
                       "extensions": [{"name": "greeting", "options": {"word": "Howdy"}}],
                       "endpoints": [{"path": "/ws", "script": "greeting.lua"}]}, f)
        r = run(c, "--check with the installed plugins", [wsrelay, "--check", "--config", config], env=env)

        async def both(port):
            await greet(c, port, "cmake-built plugin")
            await echo(c, port)

        serve_and_check(c, "installed plugin folder", wsrelay, config, env, both)

        # 2. The pkg-config build, from a folder named by plugin_dirs.
        config2 = os.path.join(tmp, "plugin_dirs.json")
        with open(config2, "w") as f:
            json.dump({"plugin_dirs": [mbuild], "listen": {"host": "127.0.0.1", "port": 0},
                       "extensions": [{"name": "greeting", "options": {"word": "Howdy"}}],
                       "endpoints": [{"path": "/ws", "script": "greeting.lua"}]}, f)
        serve_and_check(c, "pkg-config-built plugin", wsrelay, config2, env,
                        lambda port: greet(c, port, "pkg-config-built plugin"))

        # 3. examples/embed-lws against the installed tree: the plugin variant
        #    (links only libwebsockets) and the static-link variant.
        ebuild = os.path.join(tmp, "embed")
        embed_configure = ["cmake", "-S", os.path.join(args.source, "examples", "embed-lws"), "-B", ebuild,
                           "-DCMAKE_PREFIX_PATH=" + prefix]
        # Under make test-asan the installed libraries are sanitized, and a host
        # that loads them must carry the ASan runtime itself.
        if os.environ.get("WSRELAY_SANITIZERS"):
            flags = "-fsanitize=address,undefined -fno-omit-frame-pointer"
            embed_configure += ["-DCMAKE_C_FLAGS=" + flags, "-DCMAKE_CXX_FLAGS=" + flags,
                                "-DCMAKE_EXE_LINKER_FLAGS=" + flags]
        run(c, "configure examples/embed-lws against the install", embed_configure)
        run(c, "build examples/embed-lws", ["cmake", "--build", ebuild])
        embed_test = os.path.join(args.source, "tests", "plugins", "test_embed.py")
        common = ["--plugins", plugindir, "--www", os.path.join(args.source, "examples", "embed-lws", "www"),
                  "--script", os.path.join(prefix, "share", "wsrelay", "scripts", "standard.lua")]
        run(c, "embed_host with the installed libprotocol_wsrelay.so",
            [sys.executable, embed_test, "--binary", os.path.join(ebuild, "embed_host"), "--plugin-only"] + common)
        run(c, "embed_host_static linked to the installed libwsrelay_core",
            [sys.executable, embed_test, "--binary", os.path.join(ebuild, "embed_host_static")] + common)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return c.report()


if __name__ == "__main__":
    sys.exit(main())
