"""SHA-256-crypt and SHA-512-crypt (`$5$`, `$6$`), after Ulrich Drepper's specification.

Python 3.13 removed the `crypt` module; this is a small, dependency-free implementation checked
against the specification's test vectors, the system libcrypt and hashes made by `doveadm pw`.
"""

from __future__ import annotations

import hashlib
import hmac

_ALPHABET = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_ORDER = {
    "5": [(0, 10, 20), (21, 1, 11), (12, 22, 2), (3, 13, 23), (24, 4, 14),
          (15, 25, 5), (6, 16, 26), (27, 7, 17), (18, 28, 8), (9, 19, 29)],
    "6": [(0, 21, 42), (22, 43, 1), (44, 2, 23), (3, 24, 45), (25, 46, 4),
          (47, 5, 26), (6, 27, 48), (28, 49, 7), (50, 8, 29), (9, 30, 51),
          (31, 52, 10), (53, 11, 32), (12, 33, 54), (34, 55, 13), (56, 14, 35),
          (15, 36, 57), (37, 58, 16), (59, 17, 38), (18, 39, 60), (40, 61, 19),
          (62, 20, 41)],
}  # fmt: skip
_DEFAULT_ROUNDS = 5000


def _b64(b2: int, b1: int, b0: int, n: int) -> str:
    w = (b2 << 16) | (b1 << 8) | b0
    out = []
    for _ in range(n):
        out.append(_ALPHABET[w & 0x3F])
        w >>= 6
    return "".join(out)


def sha_crypt(password: bytes, setting: str) -> str:
    """Hash `password` with the `$5$`/`$6$` setting (`$6$[rounds=N$]salt[$...]`)."""
    parts = setting.split("$")
    if len(parts) < 3 or parts[0] != "" or parts[1] not in _ORDER:
        raise ValueError("not a SHA-crypt setting")
    ident = parts[1]
    rounds = _DEFAULT_ROUNDS
    custom = False
    rest = parts[2:]
    if rest[0].startswith("rounds="):
        try:
            rounds = int(rest[0][7:])
        except ValueError:
            raise ValueError("bad rounds in SHA-crypt setting") from None
        rounds = max(1000, min(999_999_999, rounds))
        custom = True
        rest = rest[1:]
        if not rest:
            raise ValueError("SHA-crypt setting without salt")
    salt = rest[0][:16].encode()
    H = hashlib.sha512 if ident == "6" else hashlib.sha256
    size = 64 if ident == "6" else 32
    plen = len(password)

    b = H(password + salt + password).digest()
    a = H(password + salt)
    i = plen
    while i > size:
        a.update(b)
        i -= size
    a.update(b[:i])
    i = plen
    while i > 0:
        a.update(b if i & 1 else password)
        i >>= 1
    c = a.digest()
    dp = H(password * plen).digest()
    p = (dp * (plen // size + 1))[:plen]
    ds = H(salt * (16 + c[0])).digest()
    s = (ds * (len(salt) // size + 1))[: len(salt)]
    for r in range(rounds):
        h = H(p if r & 1 else c)
        if r % 3:
            h.update(s)
        if r % 7:
            h.update(p)
        h.update(c if r & 1 else p)
        c = h.digest()

    encoded = "".join(_b64(c[x], c[y], c[z], 4) for x, y, z in _ORDER[ident])
    encoded += _b64(0, 0, c[63], 2) if ident == "6" else _b64(0, c[31], c[30], 3)
    head = f"${ident}$" + (f"rounds={rounds}$" if custom else "")
    return f"{head}{salt.decode()}${encoded}"


def sha_crypt_verify(password: bytes, hashed: str) -> bool:
    """True when `password` hashes to `hashed` (constant-time comparison)."""
    try:
        candidate = sha_crypt(password, hashed)
    except (ValueError, UnicodeDecodeError):
        return False
    return hmac.compare_digest(candidate.encode(), hashed.encode())
