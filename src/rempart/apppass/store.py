"""The app passwords of every account: one SQLite file, the table Dovecot reads, and the index
the decision path reads.

This object is the only writer of both files. Writes (and the Argon2id hashing) run on one
writer thread; the in-memory index is changed on the event loop only, after the write is on
disk, so a decision never sees an app password that a restart would lose. Revocation and
creation reach the Dovecot table in the same call, so a revoked app password is refused at
once; expiry is enforced by Dovecot's own query.

Files: `app-passwords.db` in the data directory (mode 0600, WAL: labels, last use, networks)
and the Dovecot table (`[app_passwords] dovecot_db`, mode 0640, rollback journal so a
read-only reader needs no write access: login, selector, hash, scopes, expiry, id only).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import grp
import hashlib
import math
import os
import secrets as _secrets
import sqlite3
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from rempart.apppass import secret as secret_mod
from rempart.apppass.settings import AppPasswordSettings
from rempart.breach.settings import DovecotHash
from rempart.model import Attempt

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS app_passwords (
  id TEXT PRIMARY KEY,
  login TEXT NOT NULL,
  label TEXT NOT NULL,
  scopes TEXT NOT NULL,
  selector TEXT NOT NULL,
  hash TEXT NOT NULL,
  created REAL NOT NULL,
  expires REAL NOT NULL DEFAULT 0,
  last_used REAL NOT NULL DEFAULT 0,
  last_network TEXT NOT NULL DEFAULT '',
  pwprefix TEXT NOT NULL DEFAULT '',
  UNIQUE (login, selector)
);
CREATE TABLE IF NOT EXISTS account_flags (
  login TEXT PRIMARY KEY,
  mail_apps_only INTEGER NOT NULL
);
-- Bumped by every change a decision worker must see (not by last-use updates): workers reload
-- the table when it moves.
CREATE TABLE IF NOT EXISTS generation (n INTEGER NOT NULL);
INSERT INTO generation SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM generation);
"""
# What Dovecot's sql passdb reads (docs/app-passwords.md has the query). `scopes` is
# ",imap,pop3,smtp,submission," so that `LIKE '%,<service>,%'` matches Dovecot's %s.
_DOVECOT_SCHEMA = """
CREATE TABLE IF NOT EXISTS dovecot_app_passwords (
  id TEXT PRIMARY KEY,
  login TEXT NOT NULL,
  selector TEXT NOT NULL,
  password TEXT NOT NULL,
  scopes TEXT NOT NULL,
  expires INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS dovecot_app_passwords_login ON dovecot_app_passwords (login, selector);
"""


_NOWHERE: dict[str, list[tuple[float, int]]] = {}
# Leading bits of Dovecot's pwhash of each app password, kept to tell, before Dovecot checks the
# password, an attempt that cannot be an app password (and so gets the main-password answer
# at once, whatever the password: no hint whether it was right). 12 bits: one wrong password in
# 4096 gets the benefit; of the secret's 89 hashed bits, 12 more become checkable by someone
# holding both the store and Dovecot's nonce (77 remain, behind Argon2id).
PREFIX_BITS = 12


class LimitReached(Exception):
    """The account already holds the configured number of app passwords."""


@dataclass(frozen=True, slots=True)
class AppPassword:
    """One app password, without its secret (never kept) or hash (only in the files)."""

    id: str
    login: str
    label: str
    scopes: tuple[str, ...]
    created: float
    expires: float = 0.0  # 0: never
    last_used: float = 0.0
    last_network: str = ""

    def live(self, now: float) -> bool:
        return not self.expires or self.expires > now

    def public(self, now: float) -> dict[str, Any]:
        return {
            "id": self.id,
            "label": self.label,
            "scopes": list(self.scopes),
            "created": self.created,
            "expires": self.expires or None,
            "expired": not self.live(now),
            "last_used": self.last_used or None,
            "last_network": self.last_network or None,
        }


def _dovecot_scopes(scopes: tuple[str, ...]) -> str:
    names = [*scopes, *(["submission"] if "smtp" in scopes else [])]
    return "," + ",".join(names) + ","


def _create_file(path: Path, mode: int) -> None:
    """Make the file with `mode` from the start (SQLite gives its journal files the same)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, mode)
    os.close(fd)
    os.chmod(path, mode)


class AppPasswordIndex:
    """What the decision path reads of every account's app passwords: the writer's own copy
    (`AppPasswordStore`) and a decision worker's (`AppPasswordCopy`) alike."""

    settings: AppPasswordSettings
    _db: sqlite3.Connection

    def _setup(
        self, data_dir: Path, settings: AppPasswordSettings, dovecot: DovecotHash | None
    ) -> None:
        """What the writer and a decision worker's copy share: settings and empty indexes."""
        self.settings = settings
        self.dovecot = dovecot if dovecot is not None and dovecot.enabled else None
        # How far to shift a stored prefix to compare it with the bits Dovecot sends.
        self._prefix_shift = (
            PREFIX_BITS - min(self.dovecot.effective_bits, PREFIX_BITS) if self.dovecot else 0
        )
        self._nonce_tag = (
            hashlib.sha256(b"rempart-app-password\0" + self.dovecot.nonce.encode()).hexdigest()[:8]
            if self.dovecot
            else ""
        )
        self.path = data_dir / "app-passwords.db"
        self._by_login: dict[str, dict[str, AppPassword]] = {}
        self._only: set[str] = set()
        self._uses: dict[str, tuple[float, str]] = {}  # id -> (when, network) not yet written
        self._owners: dict[str, tuple[str, str]] = {}  # id -> (login, selector)
        # login -> scope -> (expiry or inf, pwhash prefix or -1) of its app passwords
        self._reach: dict[str, dict[str, list[tuple[float, int]]]] = {}
        self._prefixes: dict[str, int] = {}  # id -> prefix (-1: unknown, e.g. nonce changed)

    def _read(self) -> list[Any]:
        """Fill the indexes from the table; its rows."""
        self._by_login, self._owners, self._prefixes, self._reach = {}, {}, {}, {}
        rows = self._db.execute(
            "SELECT id, login, label, scopes, created, expires, last_used, last_network, "
            "selector, hash, pwprefix FROM app_passwords"
        ).fetchall()
        for row in rows:
            item = AppPassword(
                row[0], row[1], row[2], tuple(row[3].split(",")), row[4], row[5], row[6], row[7]
            )
            self._by_login.setdefault(item.login, {})[item.id] = item
            self._owners[item.id] = (item.login, row[8])
            tag, _, value = row[10].partition(":")
            self._prefixes[item.id] = int(value) if tag and tag == self._nonce_tag else -1
        for login in self._by_login:
            self._index(login)
        self._only = {
            r[0] for r in self._db.execute("SELECT login FROM account_flags WHERE mail_apps_only")
        }
        return rows

    def _index(self, login: str) -> None:
        """Recompute what the decision path reads for `login` (after any change to it)."""
        reach: dict[str, list[tuple[float, int]]] = {}
        for item in self._by_login.get(login, {}).values():
            entry = (item.expires or math.inf, self._prefixes.get(item.id, -1))
            for scope in item.scopes:
                reach.setdefault(scope, []).append(entry)
        if reach:
            self._reach[login] = reach
        else:
            self._reach.pop(login, None)

    def _sent_prefix(self, pwhash: str) -> int:
        """The attempt's pwhash cut to the bits both sides have (-1: cannot tell)."""
        if self.dovecot is None or not pwhash:
            return -1
        sent = self.dovecot.effective_bits  # Dovecot sends the leading `sent` bits
        try:
            return int(pwhash, 16) >> (sent - min(sent, PREFIX_BITS))
        except ValueError:
            return -1

    def list(self, login: str) -> list[AppPassword]:
        items = []
        for item in self._by_login.get(login, {}).values():
            use = self._uses.get(item.id)
            if use is not None:
                item = dataclasses.replace(item, last_used=use[0], last_network=use[1])
            items.append(item)
        return sorted(items, key=lambda i: i.created)

    def mail_apps_only(self, login: str) -> bool:
        return login in self._only

    def counts(self, now: float) -> dict[str, int]:
        live = sum(1 for held in self._by_login.values() for i in held.values() if i.live(now))
        return {
            "accounts": len(self._by_login),
            "active": live,
            "expired": sum(len(h) for h in self._by_login.values()) - live,
            "mail_apps_only": len(self._only),
        }

    def mark(self, attempt: Attempt, now: float) -> str:
        """Set the attempt's app-password facts; the id of the app password Dovecot says it
        authenticated with ("" for none).

        Dovecot names the credential in `attrs` (`credential`: "" before the password check,
        "main" or "app" after; `app_password`: the id). Without `credential` in the request
        (Dovecot not configured for it) every attempt counts as a main-password one. Before the
        check, an account holding a live app password for the protocol is given the benefit:
        the answer after the check, which knows the credential, decides.
        """
        login = attempt.login
        attempt.app_passwords_only = login in self._only
        attrs = attempt.attrs
        if attrs is None:
            return ""
        credential = attrs.get("credential")
        if credential is None or credential == "main":
            return ""
        scope = attempt.protocol  # a StrEnum: the scope's name
        if credential == "":
            entries = self._reach.get(login, _NOWHERE).get(scope)
            if entries:
                sent = self._sent_prefix(attempt.pwhash)
                shift = self._prefix_shift
                for until, prefix in entries:
                    if until > now and (sent < 0 or prefix < 0 or prefix >> shift == sent):
                        attempt.app_password = True
                        break
            return ""
        held = self._by_login.get(login)
        if held is None:
            return ""
        named = attrs.get("app_password", "")
        item = held.get(named) if isinstance(named, str) else None
        if item is None or scope not in item.scopes or not item.live(now):
            return ""
        attempt.app_password = True
        return item.id

    def record_use(self, app_id: str, network: str, now: float) -> None:
        """Remember a successful use; written with the next `flush_uses`."""
        self._uses[app_id] = (now, network)

    def used_recently(
        self, login: str, address: str, scope: str, now: float, within: float
    ) -> bool:
        """Whether one of the login's live app passwords for `scope` signed in successfully
        from `address` within the last `within` seconds (uses not yet written count too)."""
        held = self._by_login.get(login)
        if not held:
            return False
        since = now - within
        for item in held.values():
            if scope not in item.scopes or not item.live(now):
                continue
            when, network = self._uses.get(item.id, (item.last_used, item.last_network))
            if when >= since and network == address:
                return True
        return False

    def _settle_uses(self) -> dict[str, tuple[float, str]]:
        """The uses recorded since the last call, now also in the index's entries."""
        uses, self._uses = self._uses, {}
        for app_id, (when, network) in uses.items():
            owner = self._owners.get(app_id)
            held = self._by_login.get(owner[0]) if owner else None
            item = held.get(app_id) if held else None
            if held is not None and item is not None:
                held[app_id] = dataclasses.replace(item, last_used=when, last_network=network)
        return uses


class AppPasswordStore(AppPasswordIndex):
    """Every account's app passwords: the writer of their files and the decision path's index."""

    def __init__(
        self, data_dir: Path, settings: AppPasswordSettings, dovecot: DovecotHash | None = None
    ) -> None:
        self._setup(data_dir, settings, dovecot)
        self.dovecot_path = (
            Path(settings.dovecot_db)
            if settings.dovecot_db
            else data_dir / "dovecot-app-passwords.db"
        )
        self.hasher = secret_mod.Hasher(settings.argon2_memory_kib, settings.argon2_time_cost)
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="app-passwords")
        self._lock = asyncio.Lock()
        _create_file(self.path, 0o600)
        # Readable by the group Dovecot's auth workers run as, when one is named; else by the
        # service's user only, like every other data file.
        _create_file(self.dovecot_path, 0o640 if settings.dovecot_db_group else 0o600)
        if settings.dovecot_db_group:
            try:
                gid = grp.getgrnam(settings.dovecot_db_group).gr_gid
            except KeyError:
                raise ValueError(
                    f"[app_passwords] dovecot_db_group: no group {settings.dovecot_db_group!r}"
                ) from None
            os.chown(self.dovecot_path, -1, gid)
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        self._dovecot = sqlite3.connect(
            self.dovecot_path, check_same_thread=False, isolation_level=None
        )
        self._dovecot.execute("PRAGMA journal_mode=DELETE")
        self._dovecot.execute("PRAGMA synchronous=FULL")
        self._dovecot.executescript(_DOVECOT_SCHEMA)
        self._load()

    # --- start -------------------------------------------------------------------------------
    def _load(self) -> None:
        rows = self._read()
        # The Dovecot table is derived: rebuilt from the store at every start.
        with self._transaction(self._dovecot):
            self._dovecot.execute("DELETE FROM dovecot_app_passwords")
            self._dovecot.executemany(
                "INSERT INTO dovecot_app_passwords VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (r[0], r[1], r[8], r[9], _dovecot_scopes(tuple(r[3].split(","))), int(r[5]))
                    for r in rows
                ],
            )

    def _prefix_of(self, login: str, secret: str) -> int:
        """The leading PREFIX_BITS of Dovecot's pwhash of this secret (-1 without a nonce)."""
        if self.dovecot is None:
            return -1
        material = self.dovecot.nonce.encode() + login.encode() + b"\0" + secret.encode()
        return int.from_bytes(hashlib.sha256(material).digest()[:2]) >> (16 - PREFIX_BITS)

    @staticmethod
    @contextlib.contextmanager
    def _transaction(db: sqlite3.Connection) -> Any:
        db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    async def _write(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._writer, fn)

    # --- changes (API and CLI, through the server) -------------------------------------------
    async def create(
        self, login: str, label: str, scopes: tuple[str, ...], expires: float, now: float
    ) -> tuple[AppPassword, str]:
        """A new app password and its secret, which the caller shows once and drops."""
        async with self._lock:
            held = self._by_login.get(login, {})
            if len(held) >= self.settings.max_per_account:
                raise LimitReached(
                    f"{login} already has {len(held)} app passwords (the limit is "
                    f"{self.settings.max_per_account}): revoke one first"
                )
            taken = {self._owners[i][1] for i in held}
            secret = secret_mod.generate()
            while secret_mod.selector(secret) in taken:
                secret = secret_mod.generate()
            item = AppPassword(_secrets.token_hex(8), login, label, scopes, now, expires)
            selector = secret_mod.selector(secret)
            prefix = self._prefix_of(login, secret)
            stored_prefix = f"{self._nonce_tag}:{prefix}" if prefix >= 0 else ""

            def write() -> None:
                hashed = self.hasher.hash(secret)
                with self._transaction(self._db):
                    self._db.execute(
                        "INSERT INTO app_passwords (id, login, label, scopes, selector, hash, "
                        "created, expires, pwprefix) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (
                            item.id,
                            login,
                            label,
                            ",".join(scopes),
                            selector,
                            hashed,
                            now,
                            expires,
                            stored_prefix,
                        ),
                    )
                    self._db.execute("UPDATE generation SET n = n + 1")
                with self._transaction(self._dovecot):
                    self._dovecot.execute(
                        "INSERT INTO dovecot_app_passwords VALUES (?, ?, ?, ?, ?, ?)",
                        (item.id, login, selector, hashed, _dovecot_scopes(scopes), int(expires)),
                    )

            await self._write(write)
            self._owners[item.id] = (login, selector)
            self._prefixes[item.id] = prefix
            self._by_login.setdefault(login, {})[item.id] = item
            self._index(login)
            return item, secret

    async def revoke(self, login: str, ids: list[str] | None) -> list[AppPassword]:
        """Revoke the named app passwords of `login` (all of them when `ids` is None); the
        ones revoked. Ids of other accounts are never touched."""
        async with self._lock:
            held = self._by_login.get(login, {})
            gone = list(held.values()) if ids is None else [held[i] for i in ids if i in held]
            if not gone:
                return []
            keys = [(g.id,) for g in gone]

            def write() -> None:
                # Dovecot's table first: from this commit on the secret no longer opens mail.
                with self._transaction(self._dovecot):
                    self._dovecot.executemany(
                        "DELETE FROM dovecot_app_passwords WHERE id = ?", keys
                    )
                with self._transaction(self._db):
                    self._db.executemany("DELETE FROM app_passwords WHERE id = ?", keys)
                    self._db.execute("UPDATE generation SET n = n + 1")

            await self._write(write)
            for g in gone:
                held.pop(g.id, None)
                self._uses.pop(g.id, None)
                self._owners.pop(g.id, None)
                self._prefixes.pop(g.id, None)
            if not held:
                self._by_login.pop(login, None)
            self._index(login)
            return gone

    async def set_mail_apps_only(self, login: str, enabled: bool) -> None:
        async with self._lock:

            def write() -> None:
                with self._transaction(self._db):
                    if enabled:
                        self._db.execute(
                            "INSERT OR REPLACE INTO account_flags VALUES (?, 1)", (login,)
                        )
                    else:
                        self._db.execute("DELETE FROM account_flags WHERE login = ?", (login,))
                    self._db.execute("UPDATE generation SET n = n + 1")

            await self._write(write)
            if enabled:
                self._only.add(login)
            else:
                self._only.discard(login)

    # --- uses -------------------------------------------------------------------------------
    def flush_uses(self) -> Future[None] | None:
        """Write the recorded uses on the writer thread (called every few seconds)."""
        uses = self._settle_uses()
        if not uses:
            return None
        rows = [(when, network, app_id) for app_id, (when, network) in uses.items()]

        def write() -> None:
            with self._transaction(self._db):
                self._db.executemany(
                    "UPDATE app_passwords SET last_used = ?, last_network = ? WHERE id = ?", rows
                )

        return self._writer.submit(write)

    def close(self) -> None:
        pending = self.flush_uses()
        if pending is not None:
            pending.result(10)
        self._writer.shutdown(wait=True)
        self._db.close()
        self._dovecot.close()


class AppPasswordCopy(AppPasswordIndex):
    """A decision worker's read-only copy of the primary's app passwords.

    The primary (`AppPasswordStore`) is their one writer. The copy reloads the table when the
    primary's change counter moves (`refresh`, once a second), and hands the uses it sees to
    the primary (`take_uses`), which writes them."""

    def __init__(
        self, data_dir: Path, settings: AppPasswordSettings, dovecot: DovecotHash | None = None
    ) -> None:
        self._setup(data_dir, settings, dovecot)
        self._db = sqlite3.connect(
            f"file:{self.path}?mode=ro", uri=True, check_same_thread=False, isolation_level=None
        )
        self._generation = -1
        self.refresh()

    def refresh(self) -> bool:
        """Reload when the primary changed an app password or an account's flag since the last
        look; whether it did."""
        row = self._db.execute("SELECT n FROM generation").fetchone()
        generation = int(row[0]) if row else 0
        if generation == self._generation:
            return False
        self._generation = generation
        self._read()
        return True

    def take_uses(self) -> list[tuple[str, float, str]]:
        """The successful uses seen since the last call, as (id, when, network), for the
        primary to write."""
        return [(app_id, when, network) for app_id, (when, network) in self._settle_uses().items()]

    def close(self) -> None:
        self._db.close()
