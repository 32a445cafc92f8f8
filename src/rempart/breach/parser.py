"""Combo-list line parsing: one raw line in, a (login, password) record or a rejection reason out.

Accepted shapes: `login:password`, `login;password`, `login<TAB>password`, `login|password`, each
with an optional URL prefix (`https://site/path:login:password`, `site.tld:login@x:password`,
`url|login|password`). The password is everything after the first separator (it may hold
separators itself); trailing CR is dropped. Bytes that are not UTF-8 are read as Latin-1 (mixed
encodings in old lists), so the stored fingerprint is that of what the user typed in UTF-8.
Reasons are short stable strings, shown in the ingest summary.
"""

from __future__ import annotations

import re

from rempart.engine.keys import MAX_LOGIN_BYTES, KeyError_, LoginRules, canonical_login

MAX_LINE_BYTES = 4096

R_BLANK = "blank line"
R_LONG = f"line longer than {MAX_LINE_BYTES} bytes"
R_CONTROL = "control characters or NUL (binary data?)"
R_NOSEP = "no login/password separator"
R_URL_ONLY = "URL without login and password"
R_EMPTY_LOGIN = "empty login"
R_EMPTY_PASSWORD = "empty password"
R_BAD_LOGIN = "login contains spaces or control characters"
R_LONG_LOGIN = f"login longer than {MAX_LOGIN_BYTES} bytes"
R_LONG_PASSWORD = "password too long"
R_CANON = "login cannot be canonicalised"

_SEP = re.compile(rb"[:;\t|]")
_CONTROL = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
_BAD_LOGIN = re.compile(rb"[\x00-\x20\x7f]")
_PORT = re.compile(rb"\d{1,5}(?=/)")
_URL_END = re.compile(rb"[:|; \t/]")


def fast_pattern(max_password: int = 256) -> re.Pattern[bytes]:
    """A regex for the common shape (`login@x:password`, printable ASCII), tried first.

    On a match its groups equal `split_line`'s result (a property test holds it to that); lines it
    does not match go through `split_line`.
    """
    return re.compile(
        rb"(?=[^\x00-\x20\x7f:;|\t]{1,%d}[:;\t|])(?=[^\n]{0,%d}\r?\Z)"  # the length limits
        rb"([^\x00-\x20\x7f:;|\t@]{0,1023}@[^\x00-\x20\x7f:;|\t]{0,1023})"
        rb"[:;\t|](?!//)([\x20-\x7e]{1,%d})\r?" % (MAX_LOGIN_BYTES, MAX_LINE_BYTES, max_password)
    )


def split_line(line: bytes, max_password: int = 256) -> tuple[bytes, bytes] | str:
    """Split one line (without its LF) into raw login and password bytes, or give a reason."""
    if line.endswith(b"\r"):
        line = line[:-1]
    if len(line) > MAX_LINE_BYTES:
        return R_LONG
    if not line or line.isspace():
        return R_BLANK
    if _CONTROL.search(line) is not None:
        return R_CONTROL
    m = _SEP.search(line)
    if m is None:
        return R_NOSEP
    cut = m.start()
    if line.startswith(b"://", cut):
        line = _drop_scheme_url(line, cut)
        if not line:
            return R_URL_ONLY
        m = _SEP.search(line)
        if m is None:
            return R_NOSEP
        cut = m.start()
    elif b"@" not in line[:cut] and _looks_like_site(line[:cut]):
        rest = line[cut + 1 :]
        m2 = _SEP.search(rest)
        if m2 is not None and b"@" in rest[: m2.start()]:
            line, cut = rest, m2.start()
    login = line[:cut].strip(b" \t")
    password = line[cut + 1 :]
    if not login:
        return R_EMPTY_LOGIN
    if not password:
        return R_EMPTY_PASSWORD
    if len(login) > MAX_LOGIN_BYTES:
        return R_LONG_LOGIN
    if len(password) > max_password:
        return R_LONG_PASSWORD
    if _BAD_LOGIN.search(login) is not None:
        return R_BAD_LOGIN
    return login, password


def _looks_like_site(field: bytes) -> bool:
    return b"." in field or b"/" in field


def _drop_scheme_url(line: bytes, scheme_colon: int) -> bytes:
    """Remove `scheme://host[:port]/path` and the separator after it; b'' if nothing follows."""
    pos = scheme_colon + 3
    while True:
        m = _URL_END.search(line, pos)
        if m is None:
            return b""
        ch = line[m.start() : m.start() + 1]
        if ch == b"/":
            pos = m.start() + 1
            continue
        if ch == b":" and _PORT.match(line, m.start() + 1):
            pos = m.start() + 1
            continue
        return line[m.start() + 1 :].lstrip(b" \t")


def to_text(raw: bytes) -> str:
    """Decode as UTF-8, falling back to Latin-1 for lists in legacy encodings."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def to_utf8(raw: bytes) -> bytes:
    """The UTF-8 bytes of a field (Latin-1 transcoded when it is not valid UTF-8)."""
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1").encode("utf-8")
    return raw


def parse_line(
    line: bytes, rules: LoginRules, max_password: int = 256
) -> tuple[str, bytes, bytes] | str:
    """Full parse: (canonical login, Dovecot user bytes, UTF-8 password) or a reason.

    The Dovecot user is the login as typed, ASCII-lower-cased like Dovecot's default `%Lu`.
    """
    parts = split_line(line, max_password)
    if isinstance(parts, str):
        return parts
    login_raw, password = parts
    try:
        canon = canonical_login(to_text(login_raw), rules)
    except KeyError_:
        return R_CANON
    if not canon or canon.startswith("@"):
        return R_EMPTY_LOGIN
    return canon, to_utf8(login_raw).lower(), to_utf8(password)
