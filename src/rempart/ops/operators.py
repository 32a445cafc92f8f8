"""Operator accounts for the console: names with argon2id password hashes in `operators.json`.

The file lives in the data directory (mode 0600) and is managed by `rempart operator add /
remove / list`. With no account defined, the API password signs in a single operator named
`admin`; once an account exists, only accounts sign in.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import os
import re
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_HASHER = PasswordHasher()
# Verified against when the name is unknown, so timing does not tell names apart.


@functools.cache
def _dummy() -> str:
    """A hash to check unknown names against (same cost either way); made on first use, not
    at import, where it cost 0.13 s of every start."""
    return _HASHER.hash("rempart-dummy-password")


SINGLE_OPERATOR = "admin"


class OperatorError(ValueError):
    """A bad operator name or password, or an unreadable accounts file."""


def fingerprint(stored_hash: str) -> str:
    """A short digest of an operator's password hash: it changes with the password, so a
    session or a journal record can be matched against it without holding the hash."""
    return hashlib.sha256(stored_hash.encode()).hexdigest()[:16]


class Operators:
    """Reads and writes `<data_dir>/operators.json` (`{"name": "argon2 hash"}`)."""

    def __init__(self, data_dir: str | Path, api_password: str = "") -> None:
        self.path = Path(data_dir) / "operators.json"
        self.api_password = api_password.encode()
        self._cache: tuple[tuple[int, int, int], dict[str, str]] | None = None

    def load(self) -> dict[str, str]:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            self._cache = None
            return {}
        except OSError as exc:
            raise OperatorError(f"cannot read {self.path}: {exc}") from None
        # Re-read only when the file changed (`rempart operator` replaces it atomically).
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        if self._cache is not None and self._cache[0] == stamp:
            return dict(self._cache[1])
        accounts = self._read()
        self._cache = (stamp, accounts)
        return dict(accounts)

    def fingerprints(self) -> dict[str, str]:
        """Each operator's password fingerprint (a missing name: no such operator)."""
        try:
            return {name: fingerprint(stored) for name, stored in self.load().items()}
        except OperatorError:
            return {}

    def _read(self) -> dict[str, str]:
        try:
            data = json.loads(self.path.read_text("utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise OperatorError(f"cannot read {self.path}: {exc}") from None
        if not isinstance(data, dict):
            raise OperatorError(f"{self.path}: expected a JSON object")
        return {str(k): str(v) for k, v in data.items()}

    def _save(self, accounts: dict[str, str]) -> None:
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(accounts, fh, indent=1, sort_keys=True)
        os.replace(tmp, self.path)

    def add(self, name: str, password: str) -> None:
        if not NAME.match(name):
            raise OperatorError("operator names are 1-64 of a-z 0-9 . _ - (lower case)")
        if len(password) < 12:
            raise OperatorError("operator passwords need at least 12 characters")
        accounts = self.load()
        accounts[name] = _HASHER.hash(password)
        self._save(accounts)

    def remove(self, name: str) -> bool:
        accounts = self.load()
        if accounts.pop(name, None) is None:
            return False
        self._save(accounts)
        return True

    def verify(self, name: str, password: str) -> str | None:
        """The operator's name when the credentials are right, else None (slow on purpose)."""
        try:
            accounts = self.load()
        except OperatorError:
            accounts = {}
        if not accounts:
            ok = bool(self.api_password) and hmac.compare_digest(
                password.encode("utf-8", "surrogatepass"), self.api_password
            )
            _check(_dummy(), password)  # same cost either way
            return SINGLE_OPERATOR if ok and name in ("", SINGLE_OPERATOR) else None
        stored = accounts.get(name)
        if stored is None:
            _check(_dummy(), password)
            return None
        return name if _check(stored, password) else None


def operator_changes(
    known: dict[str, str], current: dict[str, str]
) -> list[tuple[str, dict[str, Any]]]:
    """Journal records (kind, data) that take the journaled view `known` to `current`
    (both name → fingerprint)."""
    out: list[tuple[str, dict[str, Any]]] = []
    for name in sorted(known.keys() - current.keys()):
        out.append(("operator_removed", {"operator": name}))
    for name, print_ in sorted(current.items()):
        if name not in known:
            out.append(("operator_added", {"operator": name, "fingerprint": print_}))
        elif known[name] != print_:
            out.append(("operator_password_changed", {"operator": name, "fingerprint": print_}))
    return out


def _check(stored: str, password: str) -> bool:
    try:
        return _HASHER.verify(stored, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
