#!/usr/bin/python3
"""`wsrelay --check` on every shipped example config (examples/*/config.json
and any other *.json beside them that is a wsrelay config), and on the
built-in default: each must be valid as shipped, given the environment its
README asks for. A shipped config that rots fails here first.

    /usr/bin/python3 tests/python/test_example_configs.py <wsrelay> <source-dir>
"""

import glob
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from wsrelay_harness import Checker, clean_env, run_binary  # noqa: E402


def main():
    binary, source = sys.argv[1], sys.argv[2]
    c = Checker()
    env = clean_env({"OPENAI_API_KEY": "sk-test-not-a-real-key", "WSRELAY_ADMIN_TOKEN": "admin-token"})
    configs = sorted(glob.glob(os.path.join(source, "examples", "*", "config.json")))
    c.check(len(configs) >= 5, "the five documented systems ship a config (%d found)" % len(configs))
    for path in configs:
        code, out, err = run_binary(binary, ["--check", "--config", path], env=env)
        c.check(code == 0 and ": ok (" in out, "--check %s" % os.path.relpath(path, source), (code, out, err[-400:]))
    code, out, err = run_binary(binary, ["--check"], env=env)
    c.check(code == 0, "--check on the built-in default", (code, out, err))
    # Without the key, an OpenAI profile fails with one line naming it.
    bare = clean_env(remove=("OPENAI_API_KEY", "WSRELAY_JWT_SECRET"))
    code, out, err = run_binary(binary, ["--check", "--config",
                                         os.path.join(source, "examples", "realtime-relay", "config.json")], env=bare)
    c.check(code == 1 and "OPENAI_API_KEY is not set" in err, "a missing key is named", (code, err))
    return c.report()


if __name__ == "__main__":
    sys.exit(main())
