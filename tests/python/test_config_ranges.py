#!/usr/bin/python3
"""`wsrelay --check --config` refuses rates whose token bucket would be
undefined (issue 12: messages_per_second 1e-300 passed --check and then
answered "retry after -9223372036854775807 ms").

    /usr/bin/python3 tests/python/test_config_ranges.py <wsrelay> <source-dir>
"""

import json
import os
import sys
import tempfile

sys.dont_write_bytecode = True  # keep tests/python free of __pycache__
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from wsrelay_harness import Checker, run_binary, usage_args  # noqa: E402

RANGE = "must be 0 (off) or between 0.001 and 1000000"


def check(binary, folder, limits):
    path = os.path.join(folder, "config.json")
    with open(path, "w") as f:
        json.dump({"limits": limits, "endpoints": [{"path": "/ws"}]}, f)
    return run_binary(binary, ["--check", "--config", path])


def main():
    binary, _ = usage_args()
    c = Checker()
    with tempfile.TemporaryDirectory() as folder:
        for key in ("messages_per_second", "user_messages_per_second", "ip_messages_per_second"):
            for bad, shown in ((1e-300, "1e-300"), (0.0001, "0.0001"), (2e6, "2000000"), (-1, "-1")):
                rc, out, err = check(binary, folder, {key: bad})
                c.check(rc != 0, "--check refuses limits.%s = %s" % (key, shown), "exit %r" % rc)
                want = "config.json: limits.%s: %s, got %s" % (key, RANGE, shown)
                c.check(want in err + out, "the error names limits.%s and the value" % key, (err + out)[-400:])
            for good in (0, 0.001, 1000000):
                rc, out, err = check(binary, folder, {key: good})
                c.equal(rc, 0, "--check accepts limits.%s = %r" % (key, good))
        rc, out, err = check(binary, folder, {"message_types": {"chat": {"per_second": 1e-300}}})
        c.check(rc != 0 and "limits.message_types.chat.per_second: must be between 0.001 and 1000000, got 1e-300"
                in err + out, "--check refuses message_types.chat.per_second = 1e-300", (err + out)[-400:])
    return c.report()


if __name__ == "__main__":
    sys.exit(main())
