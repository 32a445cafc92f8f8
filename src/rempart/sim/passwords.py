"""Password popularity for the simulator: loading the real lists and sampling with their weights.

Owns where the lists are found (`--passwords DIR`, `REMPART_PASSWORD_LISTS`, the repo's
`../shared/data/passwords`, then a small sample shipped in this package) and the two
distributions the simulator needs: what users choose, and what attackers try.
"""

from __future__ import annotations

import os
import random
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

ENV_VAR = "REMPART_PASSWORD_LISTS"
USER_LISTS = (
    "phpbb-withcount.txt",
    "singles.org-withcount.txt",
    "faithwriters-withcount.txt",
    "porn-unknown-withcount.txt",
    "hak5-withcount.txt",
)
ATTACKER_LISTS = ("honeynet-withcount.txt",)
RANKED_LIST = "10-million-password-list-top-10000.txt"
SAMPLE_USERS = "users-sample-withcount.txt"
SAMPLE_ATTACKERS = "attackers-sample-withcount.txt"
_LINE = re.compile(r"^ *(\d+)(?: (.*))?$")


@dataclass(frozen=True, slots=True)
class PasswordDist:
    """Passwords in descending popularity with cumulative weights for `random.choices`."""

    words: tuple[str, ...]
    cum: tuple[float, ...]

    @classmethod
    def from_counts(cls, counts: dict[str, int]) -> PasswordDist:
        ordered = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        words: list[str] = []
        cum: list[float] = []
        total = 0.0
        for word, count in ordered:
            total += count
            words.append(word)
            cum.append(total)
        return cls(tuple(words), tuple(cum))

    def sample(self, rng: random.Random, k: int) -> list[str]:
        return rng.choices(self.words, cum_weights=self.cum, k=k)

    def top(self, n: int) -> list[str]:
        return list(self.words[:n])

    def share(self, word: str) -> float:
        """Fraction of the population weight held by `word` (0 when absent)."""
        try:
            i = self.words.index(word)
        except ValueError:
            return 0.0
        prev = self.cum[i - 1] if i else 0.0
        return (self.cum[i] - prev) / self.cum[-1]


@dataclass(frozen=True, slots=True)
class PasswordLists:
    """What users choose, and what attackers try (spraying and guessing order)."""

    users: PasswordDist
    attackers: PasswordDist
    source: str


def parse_withcount(text: str, into: dict[str, int]) -> None:
    """Add the `<spaces><count> <password>` lines of `text` to `into`, summing duplicates."""
    for line in text.splitlines():
        m = _LINE.match(line)
        if not m:
            continue
        word = m.group(2) or ""
        if not word.strip():
            continue  # an empty password cannot be typed into a login form
        into[word] = into.get(word, 0) + int(m.group(1))


def parse_ranked(text: str, into: dict[str, int], weight_total: int = 10_000) -> None:
    """Add a ranked list (most common first) with Zipf weights `weight_total / rank`."""
    for rank, word in enumerate(text.splitlines(), start=1):
        if word:
            into[word] = into.get(word, 0) + max(1, weight_total // rank)


def default_dir() -> Path:
    """`../shared/data/passwords` relative to the repository holding this package."""
    return Path(__file__).resolve().parents[3].parent / "shared" / "data" / "passwords"


def locate(explicit: str | os.PathLike[str] | None = None) -> Path | None:
    """The directory of real lists: explicit option, else the env var (either must hold the
    lists), else the default next to the repository if present, else None (use the sample)."""
    chosen = explicit or os.environ.get(ENV_VAR)
    if chosen:
        if not (Path(chosen) / USER_LISTS[0]).is_file():
            raise FileNotFoundError(f"no password lists in {chosen} (need {USER_LISTS[0]})")
        return Path(chosen)
    return default_dir() if (default_dir() / USER_LISTS[0]).is_file() else None


def load(explicit: str | os.PathLike[str] | None = None) -> PasswordLists:
    """Load the real lists if found, else the sample shipped in this package."""
    directory = locate(explicit)
    users: dict[str, int] = {}
    attackers: dict[str, int] = {}
    if directory is None:
        data = resources.files("rempart.sim") / "data"
        parse_withcount((data / SAMPLE_USERS).read_text("utf-8"), users)
        parse_withcount((data / SAMPLE_ATTACKERS).read_text("utf-8"), attackers)
        return PasswordLists(
            PasswordDist.from_counts(users), PasswordDist.from_counts(attackers), "sample"
        )
    for name in USER_LISTS:
        path = directory / name
        if path.is_file():
            parse_withcount(path.read_text("utf-8"), users)
    for name in ATTACKER_LISTS:
        path = directory / name
        if path.is_file():
            parse_withcount(path.read_text("utf-8"), attackers)
    ranked = directory / RANKED_LIST
    if ranked.is_file():
        parse_ranked(ranked.read_text("utf-8"), attackers)
    return PasswordLists(
        PasswordDist.from_counts(users), PasswordDist.from_counts(attackers), str(directory)
    )
