"""The `[postfix]` table: where the policy service listens, its limits and its messages."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rempart.config import ConfigError, check_host, knob, section

DEFAULT_PORT = 10045


def _host(raw: Any) -> str:
    try:
        return check_host(raw, "")
    except ConfigError as exc:
        raise ValueError(str(exc)) from None


def _mode(raw: Any) -> str:
    if not isinstance(raw, str) or not raw or any(c not in "01234567" for c in raw):
        raise ValueError(f'an octal file mode as a string, e.g. "0660", got {raw!r}')
    if int(raw, 8) > 0o777:
        raise ValueError(f"a file mode is at most 0777, got {raw!r}")
    return raw


def _message(raw: Any) -> str:
    if not isinstance(raw, str):
        raise TypeError(f"expected str, got {raw!r}")
    text = " ".join(raw.split())
    if not text or not text.isascii() or not text.isprintable():
        raise ValueError("a non-empty line of printable ASCII (it becomes an SMTP reply)")
    if len(text) > 400:
        raise ValueError("at most 400 characters (it becomes an SMTP reply)")
    return text


@section(
    "postfix",
    doc="Postfix policy delegation (`check_policy_service` in smtpd_recipient_restrictions): "
    "mail from an authenticated account Rempart considers taken over or restricted is refused, "
    "recipients per account per hour are limited, unauthenticated mail is left alone. Off by "
    "default; `enabled = true` listens on 127.0.0.1:10045. See docs/postfix.md.",
)
@dataclass(frozen=True, slots=True)
class PostfixSettings:
    enabled: bool = knob(False, "Serve Postfix's policy protocol from `rempart serve`.")
    host: str = knob(
        "127.0.0.1",
        "TCP address and port of the policy service (port = 0: no TCP listener). Loopback: "
        "the service has no authentication, so expose it only to the Postfix hosts.",
        parse=_host,
    )
    port: int = knob(DEFAULT_PORT, "", ge=0, le=65535)
    unix_socket: str = knob(
        "",
        "Also listen on this UNIX socket (empty: none). A chrooted smtpd (Debian's default) "
        "sees only paths under its queue directory: e.g. /var/spool/postfix/private/rempart, "
        "named `unix:private/rempart` in main.cf.",
    )
    unix_socket_mode: str = knob(
        "0660", 'Mode of the UNIX socket, octal ("0666" lets any local user ask).', parse=_mode
    )
    unix_socket_group: str = knob(
        "", "Group given to the UNIX socket (e.g. postfix); empty leaves the group as created."
    )
    refuse_restricted: bool = knob(
        True,
        "Refuse mail from an account whose current password is known leaked (the leak audit), "
        "until the password is changed. Postfix does not say which credential a session used: "
        "mail is let through when one of the account's SMTP app passwords signed in "
        "successfully from the same client address within `app_password_window` (Dovecot "
        "reports it); false leaves such accounts to the login layer.",
    )
    app_password_window: float = knob(
        600.0,
        "How long after a successful SMTP sign-in with an app password (reported by Dovecot's "
        "auth_policy) a restricted account's mail from that client address is let through. "
        "In seconds; 0 refuses restricted accounts whatever credential they used.",
        ge=0,
        le=86400,
    )
    recipients_per_hour: int = knob(
        500,
        "Most recipients one authenticated account may send to over the last hour, counted "
        "at RCPT (each recipient the policy let through); beyond, recipients are deferred "
        "(450 4.7.1) until the hour moves on. 0: no limit.",
        ge=0,
    )
    max_accounts: int = knob(
        100_000,
        "Accounts whose recipient counts are kept in memory (the least recently seen are "
        "forgotten beyond).",
        ge=100,
    )
    restricted_message: str = knob(
        "Your password appeared in a data leak: change it on our website (type the address "
        "yourself), then send again.",
        "Reply to mail from an account whose current password is known leaked (5.7.1).",
        parse=_message,
    )
    blocked_message: str = knob(
        "Sending from this account is suspended: contact support.",
        "Reply to mail from an account, address or address+account on the block list (4.7.1 "
        "while the entry has an expiry, 5.7.1 when it is permanent).",
        parse=_message,
    )
    rate_message: str = knob(
        "Too many recipients in the last hour: try again later.",
        "Reply to a recipient beyond recipients_per_hour (4.7.1).",
        parse=_message,
    )
    request_timeout: float = knob(
        10.0,
        "A request, once begun, must end within request_timeout seconds; a connection idle "
        "between requests is closed after idle_timeout (Postfix closes its own after "
        "smtpd_policy_service_max_idle, 300 s).",
        gt=0,
        le=3600,
    )
    idle_timeout: float = knob(600.0, "", gt=0, le=86400)
    max_line_bytes: int = knob(
        4096,
        "Longest attribute line and largest request (bytes); a request breaking either is "
        "answered DEFER_IF_PERMIT and its connection closed.",
        ge=256,
        le=1 << 20,
    )
    max_request_bytes: int = knob(65536, "", ge=1024, le=16 << 20)
    max_connections: int = knob(
        1024,
        "Most open policy connections (each smtpd process keeps one); beyond, new ones are "
        "closed at once.",
        ge=1,
    )

    @property
    def socket_mode(self) -> int:
        return int(self.unix_socket_mode, 8)

    def check(self) -> None:
        if self.enabled and self.port == 0 and not self.unix_socket:
            raise ConfigError("nothing to listen on: set port or unix_socket", "postfix.port")
        if self.max_request_bytes < self.max_line_bytes:
            raise ConfigError("must be at least max_line_bytes", "postfix.max_request_bytes")
