"""The nginx `auth_request` adapter: `GET /v1/nginx/auth`, and the nginx snippet that uses it.

nginx asks with a body-less subrequest before it lets a login request through; only the status
counts: 2xx lets the request pass, 401 and 403 are passed to the client (nginx copies only
`WWW-Authenticate`; other headers reach the client or the upstream through `auth_request_set`),
and anything else becomes a 500 (logged by nginx as "auth request unexpected status: N").

How Rempart answers (bodies are always empty):

| verdict  | status | headers                                                              |
|----------|--------|----------------------------------------------------------------------|
| allow    | 204    | X-Rempart-Verdict: allow                                             |
| delay    | 403    | X-Rempart-Verdict: delay, Retry-After: seconds (nginx cannot hold a  |
|          |        | request, so the client is told when to retry instead)                |
| deny     | 403    | X-Rempart-Verdict: deny                                              |
| step_up  | 401    | `[nginx] step_up = "refuse"` (default): WWW-Authenticate:             |
|          |        | Rempart-Step-Up (no browser password prompt); the client app starts  |
|          | 204    | its second factor. `"forward"`: the request passes with               |
|          |        | X-Rempart-Verdict: step_up, which the snippet hands to the upstream.  |

Every answer carries X-Rempart-Reason (reason codes), X-Rempart-Message (ASCII) and
X-Rempart-Login (the canonical login judged, percent-encoded), so nginx can log them for
`rempart tail`.

Bad input from the *client* (an undecodable Authorization, an over-long login) never makes a
4xx, which nginx would turn into a 500: the attempt is judged per source address instead. Only
a proxy misconfiguration answers otherwise: no client address from a trusted proxy gives 400,
a wrong API password 407 (not 401: nginx would pass it on and browsers would prompt). nginx
turns both into a 500, or into the fail-open fallback of the generated snippet, and names the
status in its error log.

Outcomes: stock nginx has no hook after the upstream answered that could call Rempart. `mirror`
subrequests start with the request, before the status exists; `post_action` is undocumented and
runs in the worker without retries; `log_by_lua` needs OpenResty. What Debian's nginx does do
reliably is write its access log after every request, so the generated snippet logs the login
location in `log_format rempart` (address, the login Rempart judged, status, verdict, the app's
optional `X-Rempart-Outcome` header) and `rempart tail --parser nginx` (or `[tail]` in `rempart
serve`) reports from it, with offsets that survive restarts and rotation. Backends that prefer
to report themselves call `POST /v1/report`.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from urllib.parse import quote

from rempart.adapters.context import NginxContext
from rempart.adapters.settings import NginxSettings
from rempart.adapters.sources import TrustedProxies, source_login
from rempart.engine.keys import KeyError_, canonical_login
from rempart.httpserver import Auth, HTTPError, Request, Response, Router
from rempart.model import Action, Attempt, Protocol

PATH = "/v1/nginx/auth"
LOGIN_SAFE = "@.+-_~!$&'()*,;=:"
_UNSAFE = re.compile(r"[^\x20-\x7e]")
MAX_HEADER_VALUE = 1024


def header_value(text: str) -> str:
    """A header-safe form of a message: printable ASCII, bounded."""
    return _UNSAFE.sub("?", text)[:MAX_HEADER_VALUE]


def utf8(value: str) -> str:
    """A header value as sent: the HTTP layer decodes bytes as latin-1; logins travel as UTF-8."""
    try:
        return value.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return value


def basic_credentials(header: str) -> tuple[str, str] | None:
    """(user, password) of an HTTP Basic `Authorization` value; None when absent or malformed."""
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "basic" or not token:
        return None
    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


class NginxApi:
    """The endpoint nginx's `auth_request` subrequest calls."""

    def __init__(self, context: NginxContext, settings: NginxSettings) -> None:
        self.context = context
        self.engine = context.engine
        self.settings = settings
        self.proxies = TrustedProxies(self.settings.trusted_proxies)

    def mount(self, router: Router) -> None:
        # A wrong API password is a 407 (`BasicAuth.check_proxy`): nginx passes a 401 on.
        router.add("GET", PATH, self.auth, auth=Auth.PROXY_API)
        # Without `proxy_method GET`, nginx keeps the method.
        router.add("POST", PATH, self.auth, auth=Auth.PROXY_API)

    def attempt(self, request: Request) -> Attempt:
        s = self.settings
        headers = request.headers
        ip = self.proxies.client_address(request.client, headers, s.client_ip_header)
        if ip is None:
            raise HTTPError(
                400,
                f"no client address in {s.client_ip_header} from the trusted proxy "
                f"{request.client}: set 'proxy_set_header {s.client_ip_header} $remote_addr'",
            )
        protocol = s.protocol
        if s.protocol_header:
            named = Protocol.parse(headers.get(s.protocol_header.lower()))
            if named is not Protocol.OTHER:
                protocol = named
        raw_login, password = "", None
        credentials = basic_credentials(headers.get("x-original-authorization", ""))
        if credentials is not None:
            raw_login, password = credentials
        elif s.login_header:
            raw_login = utf8(headers.get(s.login_header.lower(), ""))
        login = ""
        if raw_login:
            try:
                login = canonical_login(raw_login, self.context.login_rules)
            except KeyError_:
                login, password = "", None  # judged per source rather than failing the request
        attrs: dict[str, object] = {
            "uri": headers.get("x-original-uri", "")[:MAX_HEADER_VALUE],
            "method": headers.get("x-original-method", "")[:16],
        }
        attempt = Attempt(
            login=login or source_login(ip),
            ip=ip,
            protocol=protocol,
            device_id=headers.get(s.device_header.lower(), "")[:MAX_HEADER_VALUE]
            if s.device_header
            else "",
            user_agent=headers.get("user-agent", "")[:MAX_HEADER_VALUE],
            tls=headers.get("x-forwarded-proto", "") == "https",
            raw_login=raw_login[:MAX_HEADER_VALUE],
            attrs=attrs,
        )
        if password is not None and len(password) <= 1024:
            # Fingerprinted at once for the leaked-pair check, then dropped.
            self.context.fingerprint_password(attempt, password)
        return attempt

    def auth(self, request: Request) -> Response:
        attempt = self.attempt(request)
        verdict = self.engine.decide(attempt)
        action = verdict.action
        headers = {"X-Rempart-Verdict": action.label}
        if attempt.raw_login and not attempt.login.startswith("["):
            # Percent-encoded: any login survives the header and nginx's log line.
            headers["X-Rempart-Login"] = quote(attempt.login, safe=LOGIN_SAFE)
        if verdict.reasons:
            headers["X-Rempart-Reason"] = ",".join(verdict.codes)
            headers["X-Rempart-Message"] = header_value(verdict.message)
        if action is Action.ALLOW:
            return Response(204, b"", "text/plain", headers)
        if action is Action.DELAY:
            headers["Retry-After"] = str(max(1, math.ceil(verdict.delay_s)))
            return Response(403, b"", "text/plain", headers)
        if action is Action.STEP_UP:
            if self.settings.step_up == "forward":
                return Response(204, b"", "text/plain", headers)
            headers["WWW-Authenticate"] = 'Rempart-Step-Up realm="login"'
            return Response(401, b"", "text/plain", headers)
        return Response(403, b"", "text/plain", headers)


def nginx_config(
    *,
    rempart: str,
    api_password: str,
    location: str,
    upstream: str,
    listen: str = "80",
    access_log: str = "/var/log/nginx/rempart-login.log",
    login_variable: str = "",
    protocol: str = "web",
    fail_open: bool = True,
) -> str:
    """A working nginx configuration (the `http {}` part and one `server {}`) protecting
    `location` with Rempart, its outcomes logged for `rempart tail --parser nginx`."""
    token = base64.b64encode(f"nginx:{api_password}".encode()).decode()
    login_line = (
        f"        proxy_set_header X-Rempart-Login {login_variable};\n" if login_variable else ""
    )
    fallback = ""
    error_page = ""
    if fail_open:
        error_page = (
            "        # Rempart unreachable or misconfigured (nginx logs the status): let logins\n"
            "        # through rather than take them down. Remove for fail-closed.\n"
            "        error_page 500 502 503 504 = @rempart_unavailable;\n"
        )
        fallback = (
            "    location @rempart_unavailable {\n"
            f"        proxy_pass {upstream};\n"
            "        proxy_set_header X-Rempart-Verdict unavailable;\n"
            "        access_log " + access_log + " rempart;\n"
            "    }\n\n"
        )
    return f"""\
# Generated by `rempart nginx-config`: the login location asks Rempart before every request.
# --- in the http {{}} block -------------------------------------------------------------------
upstream rempart {{
    server {rempart};
    keepalive 16;
}}
# One line per login request, read by `rempart tail --parser nginx` to report outcomes.
log_format rempart 'rempart ip=$remote_addr login="$rempart_login" status=$status '
                   'verdict=$rempart_verdict outcome="$upstream_http_x_rempart_outcome" '
                   'method=$request_method uri="$request_uri"';

server {{
    listen {listen};

    location = {location} {{
        auth_request /_rempart_auth;
        auth_request_set $rempart_verdict $upstream_http_x_rempart_verdict;
        auth_request_set $rempart_reason $upstream_http_x_rempart_reason;
        auth_request_set $rempart_message $upstream_http_x_rempart_message;
        auth_request_set $rempart_retry $upstream_http_retry_after;
        auth_request_set $rempart_login $upstream_http_x_rempart_login;
        add_header X-Rempart-Reason $rempart_reason always;
        add_header X-Rempart-Message $rempart_message always;
        add_header Retry-After $rempart_retry always;
        # The app sees the verdict (step_up with [nginx] step_up = "forward") and may answer
        # X-Rempart-Outcome: success | failure | unknown_login to override the status mapping.
        proxy_set_header X-Rempart-Verdict $rempart_verdict;
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass {upstream};
        access_log {access_log} rempart;
{error_page}    }}

{fallback}    location = /_rempart_auth {{
        internal;
        proxy_pass http://rempart{PATH};
        proxy_method GET;
        proxy_pass_request_body off;
        proxy_set_header Content-Length "";
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_set_header Authorization "Basic {token}";
        proxy_set_header X-Real-IP $remote_addr;
        proxy_set_header X-Forwarded-For "";
        proxy_set_header X-Original-URI $request_uri;
        proxy_set_header X-Original-Method $request_method;
        proxy_set_header X-Original-Authorization $http_authorization;
        proxy_set_header X-Forwarded-Proto $scheme;
        proxy_set_header X-Rempart-Protocol {protocol};
{login_line}        proxy_connect_timeout 2s;
        proxy_read_timeout 2s;
    }}
}}
"""
