#!/usr/bin/python3
"""End-to-end test of the unity-text profile (seeds/001): plain text from Unity
to OpenAI's Realtime API, every upstream event back wrapped as
{"source":"openai","timestamp":<unix seconds>,"data":<event>}; run as
examples/unity-text/config.json unchanged against the fake upstream.

    /usr/bin/python3 tests/python/test_profile_unity_text.py <wsrelay> <source-dir>

The scenarios are the shared suite of test_profile_realtime_relay.py; this
file supplies how a frame is unwrapped and checked. Prints "N passed, M failed".
"""

import json
import os
import sys
import time

sys.dont_write_bytecode = True  # keep tests/python free of __pycache__
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import test_profile_realtime_relay as suite  # noqa: E402


def raw_member(text, name):
    """The exact text of a top-level member's value in a JSON object text
    (the encoder writes no spaces between tokens of the wrapper)."""
    decoder = json.JSONDecoder()
    obj = json.loads(text)
    if name not in obj:
        return None
    # Walk the top-level members in order, remembering where each value starts.
    i = text.index("{") + 1
    while True:
        while text[i] in " \t\r\n,":
            i += 1
        key, i = decoder.raw_decode(text, i)
        while text[i] in " \t\r\n:":
            i += 1
        _, end = decoder.raw_decode(text, i)
        if key == name:
            return text[i:end]
        i = end


class UnityTextProfile:
    name = "unity-text"
    example = "unity-text"
    path = "/unity"
    response_create = {"type": "response.create", "response": {"output_modalities": ["text"]}}
    max_message_size = 1024 * 1024
    big_message = 1024 * 1024 - 1

    def parse(self, text):
        wrapper = json.loads(text)
        return wrapper.get("source"), wrapper.get("data"), raw_member(text, "data")

    def check_frame(self, c, text, what):
        wrapper = json.loads(text)
        source, event, data_text = self.parse(text)
        c.equal(sorted(wrapper), ["data", "source", "timestamp"],
                "%s: the frame is exactly {source, timestamp, data}" % what)
        ts = wrapper.get("timestamp")
        # A float; one whose fraction is exactly 0 (one in a million) encodes as an integer.
        c.check(isinstance(ts, (float, int)) and not isinstance(ts, bool) and abs(ts - time.time()) < 30,
                "%s: timestamp is the current unix time in seconds" % what, ts)
        c.check(source in ("openai", "relay"), "%s: source is openai or relay" % what, source)
        c.check(isinstance(event, dict) and isinstance(event.get("type"), str),
                "%s: data is an event object with a type" % what, event)
        if source == "openai":
            c.equal(data_text, suite.canonical_dump(data_text),
                    "%s: data is the upstream event byte for byte" % what)
        else:
            err = (event or {}).get("error") or {}
            c.check(event.get("type") == "error" and err.get("type") == "relay_error"
                    and isinstance(err.get("code"), str) and isinstance(err.get("message"), str),
                    "%s: a relay error is data {type: error, error: {type: relay_error, code, message}}" % what,
                    event)
        return source, event


if __name__ == "__main__":
    sys.exit(suite.main(UnityTextProfile()))
