"""Audit of leaked passwords against a Dovecot passwd-file style user store, over all cores.

`user:{SCHEME}hash[:...]` lines; schemes SHA512-CRYPT, SHA256-CRYPT, BLF-CRYPT, ARGON2I,
ARGON2ID, PLAIN (CLEARTEXT), and bare `$6$`/`$5$`/`$2y$`/`$argon2` hashes. Plaintext passwords are
handed to worker processes through pipes only, never written anywhere.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import argon2
import bcrypt

from rempart.breach.shacrypt import sha_crypt_verify
from rempart.engine.keys import KeyError_, LoginRules, canonical_login

SCHEMES = ("SHA512-CRYPT", "SHA256-CRYPT", "BLF-CRYPT", "ARGON2I", "ARGON2ID", "PLAIN")
_PREFIXES = (("$6$", "SHA512-CRYPT"), ("$5$", "SHA256-CRYPT"), ("$2", "BLF-CRYPT"),
             ("$argon2id$", "ARGON2ID"), ("$argon2i$", "ARGON2I"))  # fmt: skip


class UserDbError(ValueError):
    """The user store cannot be read; the message names the file and line."""


@dataclass
class UserDb:
    """Canonical login -> (scheme, stored hash) of the accounts in a user store."""

    path: str
    accounts: dict[str, tuple[str, str]] = field(default_factory=dict)
    unsupported: dict[str, int] = field(default_factory=dict)


def split_scheme(field_value: str) -> tuple[str, str]:
    """`{SCHEME}hash` -> (SCHEME, hash); a bare crypt hash gets its scheme from its prefix."""
    if field_value.startswith("{") and "}" in field_value:
        scheme, _, rest = field_value[1:].partition("}")
        scheme = scheme.upper()
        if scheme == "CLEARTEXT":
            scheme = "PLAIN"
        return scheme, rest
    for prefix, scheme in _PREFIXES:
        if field_value.startswith(prefix):
            return scheme, field_value
    return "", field_value


def load_userdb(path: str | os.PathLike[str], rules: LoginRules) -> UserDb:
    """Read a passwd-file; unsupported schemes are counted, not fatal."""
    db = UserDb(path=str(path))
    try:
        text = Path(path).read_bytes().decode("utf-8")
    except OSError as exc:
        raise UserDbError(f"{path}: cannot read user store: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise UserDbError(f"{path}: not a text file (byte {exc.start})") from None
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        user, sep, rest = line.partition(":")
        if not sep or not user:
            raise UserDbError(f"{path}:{number}: not a `user:password` line")
        scheme, hashed = split_scheme(rest.split(":", 1)[0])
        if scheme not in SCHEMES:
            key = scheme or "unknown"
            db.unsupported[key] = db.unsupported.get(key, 0) + 1
            continue
        try:
            db.accounts[canonical_login(user, rules)] = (scheme, hashed)
        except KeyError_ as exc:
            raise UserDbError(f"{path}:{number}: {exc}") from None
    return db


_ARGON2 = argon2.PasswordHasher()


def verify(scheme: str, hashed: str, password: bytes) -> bool:
    """True when `password` matches the stored hash."""
    try:
        if scheme == "PLAIN":
            return hmac.compare_digest(hashed.encode("utf-8"), password)
        if scheme in ("SHA512-CRYPT", "SHA256-CRYPT"):
            return sha_crypt_verify(password, hashed)
        if scheme == "BLF-CRYPT":
            return bcrypt.checkpw(password[:72], hashed.encode("ascii"))
        if scheme in ("ARGON2I", "ARGON2ID"):
            want = "$argon2i$" if scheme == "ARGON2I" else "$argon2id$"
            return hashed.startswith(want) and _ARGON2.verify(hashed, password)
    except (ValueError, argon2.exceptions.VerificationError, argon2.exceptions.InvalidHashError):
        return False
    return False


def _check(job: tuple[str, str, str, bytes]) -> str | None:
    login, scheme, hashed, password = job
    return login if verify(scheme, hashed, password) else None


class Auditor:
    """Verifies (login, password) candidates against a user store in a process pool."""

    def __init__(self, userdb: UserDb, workers: int = 0) -> None:
        self.userdb = userdb
        self.workers = workers or os.cpu_count() or 1
        self._pool: ProcessPoolExecutor | None = None

    def exposed(self, candidates: Iterable[tuple[str, bytes]], skip: set[str]) -> set[str]:
        """Logins whose stored hash matches one of their candidate passwords."""
        jobs = [
            (login, *self.userdb.accounts[login], pw)
            for login, pw in sorted(candidates)
            if login not in skip and login in self.userdb.accounts
        ]
        if not jobs:
            return set()
        if self.workers == 1 or len(jobs) == 1:
            return {r for r in map(_check, jobs) if r}
        if self._pool is None:
            self._pool = ProcessPoolExecutor(self.workers)
        return {r for r in self._pool.map(_check, jobs, chunksize=4) if r}

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
