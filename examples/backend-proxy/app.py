"""The FastAPI app behind wsrelay in examples/backend-proxy.

wsrelay keeps the WebSockets; this app keeps the rules. The relay's script
(proxy.lua) calls it:

    POST /ws/connect   is this cookie / token valid?      -> 200 {"user", "channels", "info"} | 401 | 403
    POST /ws/chat      may this user say this?             -> 200 {"message": {...}} (rewritten) | 422 | 403
    POST /ws/offline   this user left (after the grace)    -> 200 {"ok": true}

and the app talks back through the relay's admin route (POST /admin/broadcast):

    POST /notify       {"user": "bob", "text": "..."} or {"channel": "lobby", "text": "..."}

For people and tests there are also POST /login (a token and a session
cookie for a user name) and GET /events (what the app has been told so far).

Run it with Debian's uvicorn (python3-fastapi, python3-uvicorn):

    WSRELAY_ADMIN_TOKEN=... /usr/bin/python3 -m uvicorn app:app --app-dir examples/backend-proxy --port 8080

Environment:
    WSRELAY_ADMIN_TOKEN  required. The one secret the two processes share: the
                         relay sends it as "Authorization: Bearer ..." on every
                         /ws/* call, the app sends it to the relay's /admin/*.
    WSRELAY_URL          where the relay's HTTP routes are (default http://127.0.0.1:8000)
    BANNED_USERS         comma-separated user names /ws/connect refuses with 403 (default "mallory")
"""

import hmac
import json
import os
import re
import secrets
import threading
import time
import urllib.error
import urllib.request
from typing import Optional

from fastapi import Depends, FastAPI, Header, HTTPException, Response
from pydantic import BaseModel

SECRET = os.environ.get("WSRELAY_ADMIN_TOKEN", "")
if not SECRET:
    raise RuntimeError("WSRELAY_ADMIN_TOKEN is not set: the relay and the app share it "
                       "(the same value as in the relay's environment)")
RELAY_URL = os.environ.get("WSRELAY_URL", "http://127.0.0.1:8000").rstrip("/")
BANNED = {u.strip() for u in os.environ.get("BANNED_USERS", "mallory").split(",") if u.strip()}

COOKIE = "session"            # the relay's "cookie_name" option must name the same cookie
CHANNELS = ["lobby"]          # every user's channels (the relay subscribes them)
MAX_TEXT = 500                # characters
BAD_WORDS = re.compile(r"\b(darn|heck|frak)\b", re.IGNORECASE)
LINK = re.compile(r"(https?://|www\.)", re.IGNORECASE)
USER_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")

app = FastAPI(title="backend-proxy app", version="1.0")

tokens = {}                   # token -> user (the cookie holds a token too)
events = {"connects": [], "chats": [], "offline": [], "notifies": []}
lock = threading.Lock()       # /notify runs in FastAPI's thread pool
chat_counter = 0


def record(kind, entry):
    entry = dict(entry, at=time.time())
    with lock:
        events[kind].append(entry)
    print("app: %s %s" % (kind, json.dumps(entry)), flush=True)


def relay_only(authorization: Optional[str] = Header(None)):
    """The /ws/* routes answer the relay only: it sends the shared secret."""
    given = authorization[7:] if authorization and authorization.startswith("Bearer ") else ""
    if not hmac.compare_digest(given.encode(), SECRET.encode()):
        raise HTTPException(401, "this route is for the relay: wrong or missing bearer token")


# ---- for people and tests ---------------------------------------------------


class Login(BaseModel):
    user: str


@app.post("/login")
async def login(body: Login, response: Response):
    """A demo login: any valid name gets a fresh token, also set as the
    session cookie. A real app checks a password here."""
    if not USER_NAME.match(body.user):
        raise HTTPException(422, "user must be 1-32 characters of A-Z a-z 0-9 _ . -")
    token = secrets.token_urlsafe(18)
    tokens[token] = body.user
    response.set_cookie(COOKIE, token, httponly=True, samesite="lax")
    return {"user": body.user, "token": token}


@app.get("/events")
async def get_events():
    """Everything the relay told the app, oldest first (a demo aid)."""
    with lock:
        return {k: list(v) for k, v in events.items()}


# ---- called by the relay ------------------------------------------------------


class Connect(BaseModel):
    session: str
    token: Optional[str] = None
    cookie: Optional[str] = None
    remote: Optional[str] = None
    origin: Optional[str] = None
    user_agent: Optional[str] = None


@app.post("/ws/connect", dependencies=[Depends(relay_only)])
async def ws_connect(body: Connect):
    # An explicit token wins over the cookie (a wrong token is not rescued by a cookie).
    if body.token is not None:
        user, how = tokens.get(body.token), "token"
    elif body.cookie is not None:
        user, how = tokens.get(body.cookie), "cookie"
    else:
        user, how = None, "nothing"
    if user is None:
        record("connects", {"session": body.session, "by": how, "user": None, "status": 401})
        raise HTTPException(401, "unknown %s" % how if how != "nothing" else "no credentials")
    if user in BANNED:
        record("connects", {"session": body.session, "by": how, "user": user, "status": 403})
        raise HTTPException(403, "user %s is banned" % user)
    record("connects", {"session": body.session, "by": how, "user": user, "status": 200})
    return {"user": user, "channels": CHANNELS, "info": {"name": user, "by": how}}


class Chat(BaseModel):
    session: str
    user: str
    channel: str
    text: str
    id: Optional[str] = None


@app.post("/ws/chat", dependencies=[Depends(relay_only)])
async def ws_chat(body: Chat):
    global chat_counter
    if len(body.text) > MAX_TEXT:
        why = "message longer than %d characters" % MAX_TEXT
    elif LINK.search(body.text):
        why = "links are not allowed in %s" % body.channel
    else:
        why = None
    if why:
        record("chats", {"session": body.session, "user": body.user, "channel": body.channel,
                         "text": body.text, "refused": why})
        raise HTTPException(422, why)
    text = BAD_WORDS.sub(lambda m: "*" * len(m.group(0)), body.text)
    chat_counter += 1
    message = {"id": "m%d" % chat_counter, "text": text, "filtered": text != body.text, "ts": time.time()}
    record("chats", {"session": body.session, "user": body.user, "channel": body.channel,
                     "text": body.text, "published": message})
    return {"message": message}


class Offline(BaseModel):
    user: str
    since: Optional[float] = None
    grace_s: Optional[float] = None


@app.post("/ws/offline", dependencies=[Depends(relay_only)])
async def ws_offline(body: Offline):
    record("offline", body.dict())
    return {"ok": True}


# ---- the app pushes through the relay --------------------------------------------


class Notify(BaseModel):
    text: str
    user: Optional[str] = None
    channel: Optional[str] = None


def broadcast(channel, message):
    """POST /admin/broadcast on the relay -> its JSON answer ({"delivered": N})."""
    req = urllib.request.Request(
        RELAY_URL + "/admin/broadcast",
        data=json.dumps({"channel": channel, "message": message}).encode(),
        headers={"Authorization": "Bearer " + SECRET, "Content-Type": "application/json"},
        method="POST")
    with urllib.request.urlopen(req, timeout=5) as res:
        return json.loads(res.read())


@app.post("/notify")
def notify(body: Notify):
    """Push a notice to every connection of one user, or to a channel. A demo
    stand-in for whatever in the app produces events (sync: FastAPI runs it
    in its thread pool, so urllib does not block the event loop)."""
    if (body.user is None) == (body.channel is None):
        raise HTTPException(422, "give exactly one of user and channel")
    channel = "user:" + body.user if body.user is not None else body.channel
    message = {"type": "notice", "text": body.text, "from": "app", "ts": time.time()}
    if body.user is not None:
        message["to"] = body.user
    try:
        answer = broadcast(channel, message)
    except urllib.error.HTTPError as e:
        raise HTTPException(502, "the relay answered %d: %s" % (e.code, e.read().decode(errors="replace")))
    except (OSError, ValueError) as e:
        raise HTTPException(502, "the relay is unreachable: %s" % e)
    record("notifies", {"channel": channel, "text": body.text, "delivered": answer.get("delivered")})
    return {"channel": channel, "delivered": answer.get("delivered")}
