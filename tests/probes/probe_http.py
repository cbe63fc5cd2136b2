#!/usr/bin/python3
"""Probes, the HTTP head (issue 12 item 2 and the header budget): a body
framed two ways (Content-Length with Transfer-Encoding), two Content-Length
headers, or one that is no number could smuggle a second request past a
front proxy's rules for /status and /admin; each is refused with 400 and
the connection closed, so the smuggled request never runs. Browsers with
6 KB and 16 KB cookies are served; `bearer` is the Bearer scheme too."""

from kit import Bystander, Server, clean_env, count_responses, http_get, http_status, main, raw_http

ADMIN = "probe-admin-token"
SMUGGLED = b"GET /admin/sessions HTTP/1.1\r\nHost: x\r\n\r\n"


def post(headers, body):
    head = "POST /healthz HTTP/1.1\r\nHost: x\r\n" + "".join("%s: %s\r\n" % h for h in headers) + "\r\n"
    return head.encode("latin-1") + body


async def group(c, binary, source):
    with Server(binary, env=clean_env({"WSRELAY_ADMIN_TOKEN": ADMIN})) as server:
        host, port = server.connect_host(), server.port
        by = await Bystander(c, server).open()
        chunked = b"0\r\n\r\n" + SMUGGLED
        attacks = [
            ("Content-Length with Transfer-Encoding: chunked",
             post([("Content-Length", str(len(chunked))), ("Transfer-Encoding", "chunked")], chunked)),
            ("Transfer-Encoding: chunked with Content-Length",
             post([("Transfer-Encoding", "chunked"), ("Content-Length", "5")], chunked)),
            ("two different Content-Length headers",
             post([("Content-Length", "0"), ("Content-Length", str(len(SMUGGLED)))], SMUGGLED)),
            ("two equal Content-Length headers",
             post([("Content-Length", str(len(SMUGGLED))), ("Content-Length", str(len(SMUGGLED)))], SMUGGLED)),
            ("Content-Length: abc", post([("Content-Length", "abc")], SMUGGLED)),
            ("Content-Length: -1", post([("Content-Length", "-1")], SMUGGLED)),
            ("Content-Length: +5", post([("Content-Length", "+5")], SMUGGLED)),
            ("Content-Length: 1,1", post([("Content-Length", "1,1")], SMUGGLED)),
        ]
        for what, data in attacks:
            got = raw_http(host, port, data, timeout=5)
            c.check(http_status(got) == 400 and count_responses(got) == 1,
                    "%s: 400, connection closed, the smuggled request is not run" % what, got[:400])
            await by.still_served(what)

        for size in (6 * 1024, 16 * 1024):
            cookie = "session=" + "c" * size
            try:
                status, _, body = http_get(host, port, "/healthz", headers={"Cookie": cookie})
            except OSError as exc:  # lws 4.1's default budget: closed without an answer
                status, body = repr(exc), None
            c.check(status == 200 and body == "ok", "GET /healthz with a %d KiB cookie: 200" % (size // 1024), status)
            await by.still_served("a %d KiB cookie" % (size // 1024))

        # What lws 4.1 answers before the relay sees the request (docs/security.md).
        got = raw_http(host, port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nCookie: a=" + b"c" * 40000 + b"\r\n\r\n")
        c.equal(got, b"", "a head past limits.max_http_header_data: closed without an answer")
        await by.still_served("a 40 KB head")
        many = b"".join(b"X-H%d: v\r\n" % i for i in range(1000))
        got = raw_http(host, port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + many + b"\r\n")
        c.check(http_status(got) == 200, "1000 unknown headers: served (lws does not keep them)", got[:100])
        await by.still_served("1000 headers")
        for line in (b"BREW /healthz HTTP/1.1", b"GET http://x/healthz HTTP/1.1"):
            got = raw_http(host, port, line + b"\r\nHost: x\r\n\r\n")
            c.check(got.startswith(b"HTTP/1.0 403 "), "%r: lws answers 403" % line, got[:100])
            await by.still_served(repr(line))

        for scheme in ("Bearer", "bearer", "BEARER"):
            status, _, _ = http_get(host, port, "/admin/sessions", headers={"Authorization": "%s %s" % (scheme, ADMIN)})
            c.equal(status, 200, "Authorization: %s <token>: the admin route answers" % scheme)
        status, _, _ = http_get(host, port, "/admin/sessions", headers={"Authorization": "Basic " + ADMIN})
        c.equal(status, 401, "another scheme is still refused")
        await by.still_served("the admin routes")
        await by.close()


if __name__ == "__main__":
    main(group)
