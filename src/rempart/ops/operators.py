"""Operator accounts for the console: names with argon2id password hashes in `operators.json`.

The file lives in the data directory (mode 0600) and is managed by `rempart operator add /
remove / list`. With no account defined, the API password signs in a single operator named
`admin`; once an account exists, only accounts sign in.
"""

from __future__ import annotations

import hmac
import json
import os
import re
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_HASHER = PasswordHasher()
# Verified against when the name is unknown, so timing does not tell names apart.
_DUMMY = _HASHER.hash("rempart-dummy-password")
SINGLE_OPERATOR = "admin"


class OperatorError(ValueError):
    """A bad operator name or password, or an unreadable accounts file."""


class Operators:
    """Reads and writes `<data_dir>/operators.json` (`{"name": "argon2 hash"}`)."""

    def __init__(self, data_dir: str | Path, api_password: str = "") -> None:
        self.path = Path(data_dir) / "operators.json"
        self.api_password = api_password.encode()

    def load(self) -> dict[str, str]:
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
            _check(_DUMMY, password)  # same cost either way
            return SINGLE_OPERATOR if ok and name in ("", SINGLE_OPERATOR) else None
        stored = accounts.get(name)
        if stored is None:
            _check(_DUMMY, password)
            return None
        return name if _check(stored, password) else None


def _check(stored: str, password: str) -> bool:
    try:
        return _HASHER.verify(stored, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
