"""The vocabulary every part of Rempart shares: Attempt, Outcome, Verdict, Reason, Protocol,
Posture and ListName."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final

from mypy_extensions import mypyc_attr


class Protocol(enum.StrEnum):
    """The channel a login attempt arrived on."""

    IMAP = "imap"
    POP3 = "pop3"
    SMTP = "smtp"
    WEB = "web"
    APP = "app"
    API = "api"
    OTHER = "other"

    @classmethod
    def parse(cls, value: str | None) -> Protocol:
        """Map a protocol name as sent by Dovecot or a backend ("imap", "IMAP", "submission"...)."""
        if not value:
            return cls.OTHER
        found = _PROTOCOL_ALIASES.get(value)  # as Dovecot sends it: no case or space to fold
        if found is not None:
            return found
        name = value.strip().lower()
        return _PROTOCOL_ALIASES.get(name) or cls.OTHER


_PROTOCOL_ALIASES: dict[str, Protocol] = {p.value: p for p in Protocol}
_PROTOCOL_ALIASES.update({"submission": Protocol.SMTP, "lmtp": Protocol.SMTP, "http": Protocol.WEB})

LEGACY_MAIL: Final = frozenset({Protocol.IMAP, Protocol.POP3, Protocol.SMTP})
# Each protocol's name as a plain str: `Protocol.X.value` runs enum's interpreted property, a
# lookup here is a dict probe (str hashing), for the per-attempt uses.
PROTOCOL_NAMES: Final[dict[Protocol, str]] = {p: p.value for p in Protocol}


class Posture(enum.StrEnum):
    """A protocol's campaign posture, in rising order of strictness (rules compare the text)."""

    NORMAL = "normal"
    GUARDED = "guarded"
    STRICT = "strict"
    CLOSED = "closed"

    @property
    def rank(self) -> int:
        return _POSTURE_RANK[self]

    @classmethod
    def parse(cls, value: str) -> Posture:
        """The posture named `value`; ValueError naming the choices otherwise."""
        try:
            return cls(value)
        except ValueError:
            choices = ", ".join(p.value for p in cls)
            raise ValueError(f"unknown posture {value!r} (one of {choices})") from None


_POSTURE_RANK = {p: i for i, p in enumerate(Posture)}


class ListName(enum.StrEnum):
    """The two access lists."""

    BLOCK = "block"
    ALLOW = "allow"


class Action(enum.IntEnum):
    """Verdict kinds, ordered by strength: the strongest matching rule wins."""

    ALLOW = 0
    DELAY = 1
    STEP_UP = 2
    DENY = 3

    @property
    def label(self) -> str:
        return ACTION_LABELS[self]


ACTION_LABELS = ("allow", "delay", "step_up", "deny")  # by Action


@dataclass(frozen=True, slots=True)
class Reason:
    """A stable machine code (`ip_failures`, `leaked_pair`, ...) with a human message."""

    code: str
    message: str


# `init=False` and the `__init__` below: mypyc compiles a written `__init__`, while the one
# `dataclass` generates stays interpreted (13 attribute stores through descriptors, 0.6 µs an
# attempt). Keep the two lists of fields in the same order.
@dataclass(slots=True, init=False)
class Attempt:
    """One login attempt, already canonicalised by an adapter.

    `login` is the canonical login (see engine.keys.canonical_login); `pwhash` is an opaque
    password fingerprint (Dovecot's truncated hash, or Rempart's keyed hash); it is never the
    password itself.
    """

    login: str
    ip: str
    protocol: Protocol = Protocol.OTHER
    pwhash: str = ""
    device_id: str = ""
    user_agent: str = ""
    tls: bool = False
    raw_login: str = ""
    attrs: dict[str, object] | None = None  # as the client sent them (any JSON values)
    # Filled by adapters that saw the plaintext password (native API): leaked-pair fingerprints.
    pair_fingerprint: bytes = b""
    password_popular: bool = False
    # Filled by adapters from the app-password index (rempart.apppass): the attempt used, or
    # before authentication may use, an app password of the account valid for this protocol;
    # and the account accepts mail apps only with app passwords.
    app_password: bool = False
    app_passwords_only: bool = False

    def __init__(
        self,
        login: str,
        ip: str,
        protocol: Protocol = Protocol.OTHER,
        pwhash: str = "",
        device_id: str = "",
        user_agent: str = "",
        tls: bool = False,
        raw_login: str = "",
        attrs: dict[str, object] | None = None,
        pair_fingerprint: bytes = b"",
        password_popular: bool = False,
        app_password: bool = False,
        app_passwords_only: bool = False,
    ) -> None:
        self.login = login
        self.ip = ip
        self.protocol = protocol
        self.pwhash = pwhash
        self.device_id = device_id
        self.user_agent = user_agent
        self.tls = tls
        self.raw_login = raw_login
        self.attrs = attrs
        self.pair_fingerprint = pair_fingerprint
        self.password_popular = password_popular
        self.app_password = app_password
        self.app_passwords_only = app_passwords_only


@dataclass(slots=True, init=False)  # a compiled `__init__`, as Attempt's
class Outcome:
    """What the authentication backend reported after an attempt."""

    success: bool
    policy_reject: bool = False
    unknown_login: bool = False

    def __init__(
        self, success: bool, policy_reject: bool = False, unknown_login: bool = False
    ) -> None:
        self.success = success
        self.policy_reject = policy_reject
        self.unknown_login = unknown_login


# A plain Python class even when compiled: orjson serializes it, and orjson 3.13 crashes on
# a mypyc native class with a float field (tests/unit/engine/test_compiled_equivalence.py).
@mypyc_attr(native_class=False)
@dataclass(slots=True)
class Verdict:
    """The engine's answer for one attempt."""

    action: Action
    delay_s: float = 0.0
    reasons: tuple[Reason, ...] = ()

    @property
    def message(self) -> str:
        return "; ".join(r.message for r in self.reasons if r.message)

    @property
    def codes(self) -> list[str]:
        return [r.code for r in self.reasons]


ALLOW = Verdict(Action.ALLOW)
