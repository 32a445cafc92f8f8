"""App-password secrets: generation, the shape users type, and the slow hash Dovecot verifies.

A secret is five groups of four characters from a 31-symbol alphabet without look-alikes
(no 0/o, 1/l/i), e.g. `k7dm-x2qa-9fbn-ht3w-pcre`: 20 random symbols, 99 bits. Its first
`SELECTOR_CHARS` characters also select the row in Dovecot's sql passdb (one row per lookup),
so they are stored in clear; the remaining 18 carry 89 bits that exist only as an Argon2id
hash. Dovecot compares the secret as typed, dashes included.
"""

from __future__ import annotations

import math
import secrets

import argon2

ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
GROUPS, GROUP_CHARS = 5, 4
SELECTOR_CHARS = 2
LENGTH = GROUPS * GROUP_CHARS + GROUPS - 1
BITS = GROUPS * GROUP_CHARS * math.log2(len(ALPHABET))
SECRET_BITS = (GROUPS * GROUP_CHARS - SELECTOR_CHARS) * math.log2(len(ALPHABET))
SCHEME = "{ARGON2ID}"  # Dovecot's scheme prefix; libsodium verifies only parallelism 1


def generate() -> str:
    """A new secret, grouped for typing."""
    chars = "".join(secrets.choice(ALPHABET) for _ in range(GROUPS * GROUP_CHARS))
    return "-".join(chars[i : i + GROUP_CHARS] for i in range(0, len(chars), GROUP_CHARS))


def selector(secret: str) -> str:
    return secret[:SELECTOR_CHARS]


class Hasher:
    """Argon2id with the configured cost, in the PHC form both argon2-cffi and Dovecot read."""

    def __init__(self, memory_kib: int, time_cost: int) -> None:
        self._hasher = argon2.PasswordHasher(
            time_cost=time_cost, memory_cost=memory_kib, parallelism=1, type=argon2.Type.ID
        )

    def hash(self, secret: str) -> str:
        """`{ARGON2ID}$argon2id$v=19$m=...,t=...,p=1$salt$hash`, as Dovecot's passdb wants it."""
        return SCHEME + self._hasher.hash(secret)

    def verify(self, stored: str, secret: str) -> bool:
        try:
            return self._hasher.verify(stored.removeprefix(SCHEME), secret)
        except argon2.exceptions.VerificationError:
            return False
