"""The backend of `make bench`'s connect_backend and backend_inflight scenarios:
a FastAPI app, run under Debian's uvicorn as the project's backends are
(`python3 -m uvicorn backend:app --app-dir bench/python --port N`).

POST /ws/connect   {"token": ...} -> {"user": ..., "ok": true} at once (what an
                   on_open asks before it sends its welcome)
GET  /sleep?s=S    answers {"slept": S} after S seconds (asyncio: a sleeping
                   request costs the loop nothing; 1,000 of them at once are
                   1,000 idle keep-alive connections)
"""

import asyncio

from fastapi import FastAPI

app = FastAPI()


@app.post("/ws/connect")
async def ws_connect(body: dict):
    return {"user": str(body.get("token") or "anonymous"), "ok": True}


@app.get("/sleep")
async def sleep(s: float = 5.0):
    await asyncio.sleep(min(max(s, 0.0), 300.0))
    return {"slept": s}
