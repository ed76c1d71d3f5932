"""Who may read the dashboard and who may change things through it.

Rules (the chat server's, extended to a browser):

- No token (the server is bound to loopback, which :class:`~edge_runtime.llm.server.ServerConfig`
  enforces): every request may read, but the ``Host`` header must name a loopback address, so a web page
  elsewhere cannot reach this server through DNS rebinding.
- A token: a request is authenticated by ``Authorization: Bearer TOKEN`` or by the session cookie the
  login form sets (``HttpOnly``, ``SameSite=Strict``; its value is an HMAC of the token, so changing the
  token logs every browser out). Comparisons are constant-time; a wrong token waits before the answer.
- Writes (saving lines and zones, chatting, logging in) must also come from this origin: an ``Origin``
  header, when the browser sends one, must equal this server's, and a cookie-authenticated write must
  carry the page's CSRF token in ``X-CSRF-Token`` (a custom header cannot be sent cross-site without a
  CORS preflight this server never grants). Bearer-header writes need no CSRF token: a browser never
  adds that header by itself.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Any, Optional
from urllib.parse import urlsplit

from ..llm.server import is_loopback

__all__ = ["COOKIE", "CSRF_HEADER", "Guard"]

COOKIE = "edge_dashboard"
CSRF_HEADER = "x-csrf-token"
_SESSION_LABEL = b"edge-runtime dashboard session v1"


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode("utf-8", "surrogateescape"), b.encode("utf-8", "surrogateescape"))


class Guard:
    """Authentication and cross-site checks for the dashboard's routes.

    Args:
        token: the chat server's bearer token; None = loopback only, no login.
        csrf: the CSRF token embedded in the page (default: a fresh random one per process).
    """

    def __init__(self, token: Optional[str], *, csrf: Optional[str] = None) -> None:
        self.token = token or None
        self.csrf = csrf or secrets.token_urlsafe(32)
        self._session = (hmac.new(self.token.encode(), _SESSION_LABEL, hashlib.sha256).hexdigest()
                         if self.token else "")

    @property
    def login_required(self) -> bool:
        return self.token is not None

    def session_value(self) -> str:
        """What the session cookie holds after a successful login."""
        return self._session

    def token_matches(self, candidate: str) -> bool:
        """Constant-time comparison with the token (False when there is none)."""
        return self.token is not None and _same(candidate, self.token)

    def _bearer(self, request: Any) -> bool:
        header = request.headers.get("authorization", "")
        return self.token is not None and header.startswith("Bearer ") and _same(header[7:], self.token)

    def host_allowed(self, request: Any) -> bool:
        """Without a token only loopback Host names are served (DNS-rebinding defence)."""
        if self.token is not None:
            return True
        host = request.headers.get("host", "")
        name = urlsplit(f"//{host}").hostname or ""
        return is_loopback(name)

    def authenticated(self, request: Any) -> bool:
        """May this request read? (Loopback-only servers: yes, from a loopback Host.)"""
        if not self.host_allowed(request):
            return False
        if self.token is None:
            return True
        if self._bearer(request):
            return True
        return _same(request.cookies.get(COOKIE, ""), self._session)

    def same_origin(self, request: Any) -> bool:
        """The request's ``Origin`` (if sent) is this server's own, and fetch metadata does not say
        cross-site."""
        origin = request.headers.get("origin")
        if origin is not None:
            host = request.headers.get("host", "")
            if origin == "null" or urlsplit(origin).netloc != host or not host:
                return False
        site = request.headers.get("sec-fetch-site")
        return site in (None, "same-origin", "none")

    def write_problem(self, request: Any) -> Optional[str]:
        """Why this write must be refused (None: it may go ahead)."""
        if not self.authenticated(request):
            return "not authenticated"
        if not self.same_origin(request):
            return "cross-site request refused"
        if self._bearer(request):
            return None
        if not _same(request.headers.get(CSRF_HEADER, ""), self.csrf):
            return f"missing or wrong {CSRF_HEADER} header"
        return None
