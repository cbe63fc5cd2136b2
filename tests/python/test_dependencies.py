#!/usr/bin/python3
"""The dependency rule of docs/architecture.md, checked over the source tree
(issue 13): app -> core <- plugins; inside core/ each folder includes only
its own layer or lower ones and the folders' include graph has no loop; no
core header under plugins/ but in the relay protocol; no core .cpp over 700
lines; the relay protocol adapter at most 725 lines of code.

    /usr/bin/python3 tests/python/test_dependencies.py <wsrelay> <source-dir>
"""

import os
import re
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from wsrelay_harness import Checker, usage_args  # noqa: E402

# Lower number = lower layer (docs/architecture.md, "The dependency rule").
LAYERS = {
    "json": 0, "util": 0, "frame": 0, "stats": 0, "loop": 0,
    "auth": 1, "http": 1, "pubsub": 1, "config": 1, "extension": 1, "outbound": 1,
    "session": 2,
    "script": 3, "upstream": 3,
    "server": 4,
    "connection": 5,
}
INCLUDE = re.compile(r'^\s*#\s*include\s*[<"]([^>"]+)[>"]', re.M)


def sources(root, folder):
    for dirpath, _, files in os.walk(os.path.join(root, folder)):
        for name in files:
            if name.endswith((".cpp", ".hpp", ".h", ".c")):
                yield os.path.join(dirpath, name)


def includes(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        return INCLUDE.findall(f.read())


def code_lines(path):
    n = 0
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            s = line.strip()
            if s and not s.startswith("//"):
                n += 1
    return n


def main(c):
    _, root = usage_args()
    core = os.path.join(root, "core")
    folders = sorted(d for d in os.listdir(core) if os.path.isdir(os.path.join(core, d)))
    c.equal(sorted(set(folders) - set(LAYERS)), [], "every core folder has a layer in the rule")
    plugin_dirs = sorted(os.listdir(os.path.join(root, "plugins")))

    graph = {f: set() for f in folders}
    for folder in folders:
        for path in sources(root, "core/" + folder):
            for inc in includes(path):
                top = inc.split("/")[0]
                if top in plugin_dirs or inc.startswith("plugins/"):
                    c.check(False, "%s includes a plugin header (%s)" % (os.path.relpath(path, root), inc))
                if top in LAYERS and top != folder and "/" in inc:
                    graph[folder].add(top)
                    c.check(LAYERS[top] <= LAYERS[folder], "%s (layer %d) includes %s (layer %d): %s"
                            % (folder, LAYERS[folder], top, LAYERS[top], os.path.relpath(path, root)))
    # No loop among the folders (same-layer folders may use each other one way only).
    state = {}

    def visit(node, trail):
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                c.check(False, "include loop: %s" % " -> ".join(trail + [node, nxt]))
            elif nxt not in state:
                visit(nxt, trail + [node])
        state[node] = "done"

    for f in folders:
        if f not in state:
            visit(f, [])
    c.check(True, "the core folders' include graph was walked")

    for path in sources(root, "app"):
        for inc in includes(path):
            c.check(inc.split("/")[0] not in plugin_dirs, "app includes a plugin header: %s" % inc)
    for plugin in plugin_dirs:
        if plugin == "protocol_wsrelay":
            continue
        for path in sources(root, "plugins/" + plugin):
            for inc in includes(path):
                c.check(inc.split("/")[0] not in LAYERS,
                        "%s includes a core header (%s): plugins reach the relay through include/wsrelay"
                        % (os.path.relpath(path, root), inc))
    for path in sources(root, "core"):
        if path.endswith(".cpp"):
            with open(path, encoding="utf-8", errors="replace") as f:
                n = sum(1 for _ in f)
            c.check(n <= 700, "%s has %d lines (at most 700)" % (os.path.relpath(path, root), n))
    adapter = sum(code_lines(p) for p in sources(root, "plugins/protocol_wsrelay"))
    # 650 when issue 13 made the adapter thin; +75 for what only lws can do
    # for issue 16: asking lws for the handshake's headers one by one (the
    # known tokens and the endpoint's custom ones), handing on_upgrade's user
    # to the open, and writing an HTTP answer that comes later (a script
    # route that waits). The loop binding itself lives in core/loop.
    c.check(adapter <= 725, "plugins/protocol_wsrelay: %d lines of code (at most 725)" % adapter)
    print("plugins/protocol_wsrelay: %d lines of code; core folders: %s" % (adapter, ", ".join(
        "%s->%s" % (f, "+".join(sorted(graph[f])) or "-") for f in folders)))
    return c.report()


if __name__ == "__main__":
    sys.exit(main(Checker()))
