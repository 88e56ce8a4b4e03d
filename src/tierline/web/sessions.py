"""Dashboard sessions: sign in once with an API key, then a session cookie.

The cookie holds only a random session id (httpOnly, SameSite=Strict, Secure over HTTPS); the
session itself (the key's id, a CSRF token, its times) is kept on the server, in this process. The
key is never stored: each request re-reads the key's row, so a revoked key ends its sessions at
once and a role change takes effect on the next request. Sessions end after 12 hours, or after
2 hours without a request, or at sign-out.

`session_caller` is what the API's authentication dependency asks when a request carries no API
key: the same roles then apply to the dashboard's fetch calls as to any other client. A request
that changes something (any method but GET/HEAD/OPTIONS) must also carry the session's CSRF token
in ``X-CSRF-Token``.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from dataclasses import dataclass, field

from fastapi import Request
from sqlalchemy import select
from sqlalchemy.engine import Engine
from starlette.exceptions import HTTPException

from tierline.api.keys import KEYS, Caller

COOKIE = "tierline_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
MAX_AGE = 12 * 3600.0
IDLE = 2 * 3600.0
MAX_SESSIONS = 10_000


@dataclass
class Session:
    id: str
    key_id: str
    role: str
    label: str
    csrf: str
    created: float = field(default_factory=time.monotonic)
    seen: float = field(default_factory=time.monotonic)

    @property
    def caller(self) -> Caller:
        return Caller(self.key_id, self.role)


class Sessions:
    """The server-side session store of one service process."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()

    def create(self, caller: Caller) -> Session:
        label = self._key_row(caller.key_id)
        session = Session(
            secrets.token_urlsafe(32), caller.key_id, caller.role, label[1] if label else "", secrets.token_urlsafe(24)
        )
        with self._lock:
            self._prune()
            self._sessions[session.id] = session
        return session

    def get(self, session_id: str | None) -> Session | None:
        """The live session, with the key's current role; None when absent, expired or revoked."""
        if not session_id:
            return None
        now = time.monotonic()
        with self._lock:
            session = self._sessions.get(session_id)
            if session is None:
                return None
            if now - session.created > MAX_AGE or now - session.seen > IDLE:
                del self._sessions[session_id]
                return None
        row = self._key_row(session.key_id)
        if row is None:  # the key was revoked: its sessions end with it
            self.end(session_id)
            return None
        session.role, session.label, session.seen = row[0], row[1], now
        return session

    def end(self, session_id: str | None) -> None:
        with self._lock:
            self._sessions.pop(session_id or "", None)

    def _key_row(self, key_id: str) -> tuple[str, str] | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(KEYS.c.role, KEYS.c.label, KEYS.c.revoked_at).where(KEYS.c.id == key_id)).first()
        if row is None or row.revoked_at is not None:
            return None
        return str(row.role), str(row.label or "")

    def _prune(self) -> None:
        now = time.monotonic()
        for sid, s in list(self._sessions.items()):
            if now - s.created > MAX_AGE or now - s.seen > IDLE:
                del self._sessions[sid]
        while len(self._sessions) >= MAX_SESSIONS:  # the oldest go first
            del self._sessions[min(self._sessions, key=lambda k: self._sessions[k].seen)]


def session_of(request: Request) -> Session | None:
    """The request's dashboard session, if the dashboard is mounted and the cookie names a live one."""
    store = getattr(request.app.state, "web_sessions", None)
    if not isinstance(store, Sessions):
        return None
    return store.get(request.cookies.get(COOKIE))


def session_caller(request: Request) -> Caller | None:
    """The caller a dashboard session cookie stands for (used by the API when no key is sent).

    A write must carry the session's CSRF token; without it the request is refused (403)."""
    session = session_of(request)
    if session is None:
        return None
    if request.method not in SAFE_METHODS and not hmac.compare_digest(
        request.headers.get(CSRF_HEADER, "").encode(), session.csrf.encode()
    ):
        raise HTTPException(403, f"a write from the dashboard needs its {CSRF_HEADER} header")
    return session.caller
