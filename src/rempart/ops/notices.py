"""Operator notices for the public status page, kept in `<data_dir>/status-notices.jsonl`.

`rempart status post` appends; the server re-reads the file when it changes. A notice never
carries a link, not even a bare domain ("evil.example/reset"), and never asks users to click
anything to reset a password: phishers copy such messages, so users are told to type the site's
address themselves. A notice names one of the status page's services, and can be withdrawn
(a withdrawal line is appended: the file stays append-only, the notice leaves the public page
and its history).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

LEVELS = ("up", "restricted", "degraded", "down")
MAX_TEXT = 500
FILE = "status-notices.jsonl"
_LINK = re.compile(r"://|\bwww\.|\b[\w-]+\.(?:com|net|org|io|info|biz|[a-z]{2})/\S", re.I)
# Anything a reader could type into a browser: labels joined by dots ending in a letters-only
# top-level label ("evil.example", "bank.co.uk/reset", "support@bank.fr"); "e.g." and "v2.3" pass.
_DOMAIN = re.compile(r"\b[a-z0-9](?:[a-z0-9-]{0,62})(?:\.[a-z0-9-]{1,63})*\.[a-z]{2,63}\b", re.I)
_CLICK = re.compile(r"\b(click|tap|follow)\b", re.I)
_RESET = re.compile(r"\b(reset|password|verify|confirm)\b", re.I)
SERVICE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")


class NoticeError(ValueError):
    """A notice that cannot be posted, with what to change."""


@dataclass(frozen=True, slots=True)
class Notice:
    t: float
    service: str
    level: str
    text: str
    by: str
    id: str = ""  # notices written before ids existed get one derived from their time


def check_text(text: str) -> str:
    text = " ".join(text.split())
    if not text:
        raise NoticeError("the notice text is empty")
    if len(text) > MAX_TEXT:
        raise NoticeError(f"the notice text is longer than {MAX_TEXT} characters")
    domain = _DOMAIN.search(text)
    if _LINK.search(text) or domain:
        shown = f" ({domain.group(0)!r} reads as a web address)" if domain else ""
        raise NoticeError(
            f"notices carry no links or web addresses{shown}: phishers copy them. Tell users "
            "to type the site's address themselves instead"
        )
    if _CLICK.search(text) and _RESET.search(text):
        raise NoticeError(
            "notices never ask users to click or tap anything to reset or confirm a password"
        )
    return text


class Notices:
    def __init__(self, data_dir: str | Path, services: Iterable[str] = ()) -> None:
        self.path = Path(data_dir) / FILE
        self.services = tuple(services)  # the status page's services; empty: any valid name
        self._cache: tuple[float, int, list[Notice]] = (-1.0, -1, [])

    def post(
        self, service: str, level: str, text: str, by: str, now: float | None = None
    ) -> Notice:
        if not SERVICE.match(service):
            raise NoticeError(
                "field 'service': names are 1-32 of a-z 0-9 _ - (e.g. imap, web, payments)"
            )
        if self.services and service not in self.services:
            raise NoticeError(
                f"field 'service': unknown service {service!r} (known: "
                f"{', '.join(self.services)}; add others under [status] services)"
            )
        if level not in LEVELS:
            raise NoticeError(f"field 'level' must be one of {', '.join(LEVELS)}")
        notice = Notice(
            round(time.time() if now is None else now, 3),
            service,
            level,
            check_text(text),
            by[:64],
            secrets.token_hex(4),
        )
        self._append(asdict(notice))
        return notice

    def withdraw(self, notice_id: str, by: str, now: float | None = None) -> Notice:
        """Take a notice off the public page and its history; the withdrawn notice."""
        found = next((n for n in self.all() if n.id == notice_id), None)
        if found is None:
            raise NoticeError(f"field 'id': no current notice {notice_id[:20]!r}")
        stamp = round(time.time() if now is None else now, 3)
        self._append({"t": stamp, "withdraw": notice_id, "by": by[:64]})
        return found

    def _append(self, record: dict[str, object]) -> None:
        line = json.dumps(record, ensure_ascii=False) + "\n"
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        with os.fdopen(fd, "a", encoding="utf-8") as fh:
            fh.write(line)

    def all(self) -> list[Notice]:
        """Every notice not withdrawn, oldest first (damaged lines are skipped)."""
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return []
        if (st.st_mtime, st.st_size) == self._cache[:2]:
            return self._cache[2]
        out: list[Notice] = []
        withdrawn: set[str] = set()
        with open(self.path, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                try:
                    d = json.loads(line)
                    if "withdraw" in d:
                        withdrawn.add(str(d["withdraw"]))
                        continue
                    t = float(d["t"])
                    out.append(
                        Notice(
                            t,
                            str(d["service"]),
                            str(d["level"]),
                            str(d["text"]),
                            str(d.get("by", "")),
                            str(d.get("id") or f"t{t:.3f}"),
                        )
                    )
                except (ValueError, KeyError, TypeError):
                    continue
        out = [n for n in out if n.id not in withdrawn]
        self._cache = (st.st_mtime, st.st_size, out)
        return out

    def current(self) -> dict[str, Notice]:
        """The latest notice per service (a level of `up` clears the service's notice)."""
        latest: dict[str, Notice] = {}
        for notice in self.all():
            latest[notice.service] = notice
        return {s: n for s, n in latest.items() if n.level != "up"}

    def between(self, since: float, until: float) -> list[Notice]:
        return [n for n in self.all() if since <= n.t <= until]
