"""Operator notices for the public status page, kept in `<data_dir>/status-notices.jsonl`.

`rempart status post` appends; the server re-reads the file when it changes. A notice never
carries a link and never asks users to click anything to reset a password: phishers copy
such messages, so users are told to type the site's address themselves.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path

LEVELS = ("up", "restricted", "degraded", "down")
MAX_TEXT = 500
FILE = "status-notices.jsonl"
_LINK = re.compile(r"://|\bwww\.|\b[\w-]+\.(?:com|net|org|io|info|biz|[a-z]{2})/\S", re.I)
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


def check_text(text: str) -> str:
    text = " ".join(text.split())
    if not text:
        raise NoticeError("the notice text is empty")
    if len(text) > MAX_TEXT:
        raise NoticeError(f"the notice text is longer than {MAX_TEXT} characters")
    if _LINK.search(text):
        raise NoticeError(
            "notices carry no links: phishers copy them. Tell users to type the site's "
            "address themselves instead"
        )
    if _CLICK.search(text) and _RESET.search(text):
        raise NoticeError(
            "notices never ask users to click or tap anything to reset or confirm a password"
        )
    return text


class Notices:
    def __init__(self, data_dir: str | Path) -> None:
        self.path = Path(data_dir) / FILE
        self._cache: tuple[float, int, list[Notice]] = (-1.0, -1, [])

    def post(
        self, service: str, level: str, text: str, by: str, now: float | None = None
    ) -> Notice:
        if not SERVICE.match(service):
            raise NoticeError("service names are 1-32 of a-z 0-9 _ - (e.g. imap, web, payments)")
        if level not in LEVELS:
            raise NoticeError(f"level must be one of {', '.join(LEVELS)}")
        notice = Notice(
            round(time.time() if now is None else now, 3), service, level, check_text(text), by[:64]
        )
        line = json.dumps(asdict(notice), ensure_ascii=False) + "\n"
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        with os.fdopen(fd, "a", encoding="utf-8") as fh:
            fh.write(line)
        return notice

    def all(self) -> list[Notice]:
        """Every notice, oldest first (damaged lines are skipped)."""
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return []
        if (st.st_mtime, st.st_size) == self._cache[:2]:
            return self._cache[2]
        out: list[Notice] = []
        with open(self.path, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                try:
                    d = json.loads(line)
                    out.append(
                        Notice(
                            float(d["t"]),
                            str(d["service"]),
                            str(d["level"]),
                            str(d["text"]),
                            str(d.get("by", "")),
                        )
                    )
                except (ValueError, KeyError, TypeError):
                    continue
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
