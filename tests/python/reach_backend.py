"""The FastAPI backend of tests/python/test_script_reach.py: what a script's
relay.http.request talks to. Started by the test under uvicorn on a socket
the test bound to an ephemeral port (uvicorn --fd), never on a fixed port.

    /usr/bin/python3 -m uvicorn --app-dir tests/python reach_backend:app --fd N

Routes:
  GET  /healthz              ready probe
  ANY  /echo                 what arrived: method, headers, query, body, json;
                             answers with a mixed-case and a repeated header
  GET  /status/{code}        a JSON answer with that status
  GET  /sleep?s=N            answers after N seconds (0..60)
  GET  /big?mb=N&length=1    N MiB of 'x', chunked or with a Content-Length
  GET  /badjson              content-type application/json, a body that is not JSON
  GET  /plain                text/plain that looks like JSON
  POST /ws/connect           {token, cookie, delay}: {"user": ...} or 403
  GET  /stats                the most /sleep requests that were waiting at once
"""

import asyncio
import json

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse

app = FastAPI()

_sleeping = {"now": 0, "max": 0}

USERS = {"good": "alice", "bob-token": "bob"}
COOKIES = {"sess-ok": "alice"}


@app.get("/healthz")
async def healthz():
    return {"ok": True}


@app.api_route("/echo", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
async def echo(request: Request):
    raw = await request.body()
    try:
        parsed = json.loads(raw) if raw else None
    except ValueError:
        parsed = None
    response = JSONResponse({
        "method": request.method,
        "headers": {k.lower(): v for k, v in request.headers.items()},
        "query": dict(request.query_params),
        "body": raw.decode("utf-8", "replace"),
        "json": parsed,
    })
    response.headers["X-Mixed-Case"] = "Yes"
    response.headers.append("X-Multi", "one")
    response.headers.append("X-Multi", "two")
    return response


@app.get("/status/{code}")
async def status(code: int):
    return JSONResponse({"code": code}, status_code=code)


@app.get("/sleep")
async def sleep(s: float = 1.0):
    _sleeping["now"] += 1
    _sleeping["max"] = max(_sleeping["max"], _sleeping["now"])
    try:
        await asyncio.sleep(max(0.0, min(s, 60.0)))
    finally:
        _sleeping["now"] -= 1
    return {"slept": s}


@app.get("/stats")
async def stats():
    return dict(_sleeping)


@app.get("/big")
async def big(mb: int = 50, length: int = 0):
    total = mb * 1024 * 1024
    chunk = b"x" * 65536

    async def body():
        sent = 0
        while sent < total:
            piece = chunk[:total - sent]
            sent += len(piece)
            yield piece

    headers = {"Content-Length": str(total)} if length else None
    return StreamingResponse(body(), media_type="application/octet-stream", headers=headers)


@app.get("/badjson")
async def badjson():
    return Response('{"a": 1, "b": [tru', media_type="application/json")


@app.get("/plain")
async def plain():
    return Response('{"a": 1}', media_type="text/plain")


@app.post("/ws/connect")
async def ws_connect(request: Request):
    data = await request.json()
    await asyncio.sleep(max(0.0, min(float(data.get("delay") or 0), 5.0)))
    user = USERS.get(data.get("token") or "") or COOKIES.get(data.get("cookie") or "")
    if user is None:
        return JSONResponse({"detail": "refused"}, status_code=403)
    return {"user": user}
