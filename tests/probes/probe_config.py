#!/usr/bin/python3
"""Probes, config values (issue 12 items 8, 9): a rate no token bucket can
hold (1e-300, which answered `retry after -9223372036854775807 ms`), a
negative one or a huge one is refused by `--check` and at startup, naming
the key and the value; the documented `static` key is accepted. A running
server is not disturbed by any of it."""

import json
import os

from kit import Bystander, Server, clean_env, main, temp_folder
from wsrelay_harness import run_binary


def check(binary, folder, config):
    path = os.path.join(folder, "probe.json")
    with open(path, "w") as f:
        json.dump(config, f)
    rc, _, err = run_binary(binary, ["--check", "--config", path])
    return rc, err


async def group(c, binary, source):
    with Server(binary, env=clean_env()) as server, temp_folder() as folder:
        by = await Bystander(c, server).open()
        for key, value in (("messages_per_second", 1e-300), ("messages_per_second", -1),
                           ("messages_per_second", 1e7), ("user_messages_per_second", 1e-9),
                           ("ip_messages_per_second", 5e300), ("message_burst", 0)):
            rc, err = check(binary, folder, {"limits": {key: value}, "endpoints": [{"path": "/ws"}]})
            c.check(rc == 1 and ("limits." + key) in err, "limits.%s = %r: --check refuses it, naming the key"
                    % (key, value), err[-300:])
            await by.still_served("--check on limits.%s = %r" % (key, value))
        rc, err = check(binary, folder, {"limits": {"message_types": {"chat": {"per_second": 1e-300}}},
                                         "endpoints": [{"path": "/ws"}]})
        c.check(rc == 1 and "per_second" in err, "a per-type rate of 1e-300 is refused", err[-300:])
        os.mkdir(os.path.join(folder, "site"))
        rc, err = check(binary, folder, {"static": os.path.join(folder, "site"), "endpoints": [{"path": "/ws"}]})
        c.equal(rc, 0, "the documented 'static' key passes --check (%s)" % err.strip()[-200:])
        path = os.path.join(folder, "bad.json")
        with open(path, "w") as f:
            json.dump({"listen": {"port": 0}, "limits": {"messages_per_second": 1e-300}}, f)
        refused = Server(binary, ["--config", path])
        try:
            refused.start()
            started = True
        except Exception:  # noqa: BLE001
            started = False
        finally:
            refused.stop()
        c.check(not started and "messages_per_second" in refused.stderr_text(),
                "a server does not start on a rate of 1e-300, and says why", refused.stderr_text()[-300:])
        await by.still_served("the config probes")
        await by.close()


if __name__ == "__main__":
    main(group)
