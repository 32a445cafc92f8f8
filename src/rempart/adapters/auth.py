"""HTTP Basic authentication for the APIs: any user name, the API password checked in constant time.

The server hands `check` to the Router as the guard of `Auth.API` routes and `check_proxy` as the
guard of `Auth.PROXY_API` ones; no handler calls them itself."""

from __future__ import annotations

import base64
import binascii
import hmac

from rempart.httpserver import HTTPError, Request

CHALLENGE = {"WWW-Authenticate": 'Basic realm="rempart"'}


class BasicAuth:
    def __init__(self, password: str) -> None:
        self.password = password.encode()
        # Header values already verified: Dovecot sends the same one on every request.
        self._accepted: set[str] = set()

    def check(self, request: Request) -> None:
        """Let the request through, or HTTPError 401 with a Basic challenge."""
        header = request.headers.get("authorization", "")
        if header in self._accepted:
            return
        scheme, _, token = header.strip().partition(" ")
        if scheme.lower() != "basic" or not token:
            raise HTTPError(401, "authentication required (HTTP Basic)", CHALLENGE)
        try:
            decoded = base64.b64decode(token.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise HTTPError(401, "malformed Basic credentials", CHALLENGE) from None
        _, sep, password = decoded.partition(b":")
        if not sep or not hmac.compare_digest(password, self.password):
            raise HTTPError(401, "wrong API password", CHALLENGE)
        if len(self._accepted) < 64:
            self._accepted.add(header)

    def check_proxy(self, request: Request) -> None:
        """`check` for nginx's auth_request subrequest: 407, not 401, which nginx would pass
        to the client (and browsers would prompt for a password)."""
        try:
            self.check(request)
        except HTTPError as exc:
            raise HTTPError(
                407,
                f"{exc.reason}: nginx must send the API password in "
                "'proxy_set_header Authorization' (see `rempart nginx-config`)",
                {"Proxy-Authenticate": 'Basic realm="rempart"'},
            ) from None
