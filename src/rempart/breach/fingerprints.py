"""Keyed fingerprints of logins and login+password pairs, and Dovecot's `pwhash`.

Every value stored by the corpus comes from here. Per pair the corpus keeps three 8-byte values:
- login fingerprint: first 8 bytes of blake2b(K_login || canonical login, 16 bytes);
- pair fingerprint: blake2b(K_pair || canonical login || 0x00 || password, 8 bytes);
- Dovecot fingerprint: the other 8 bytes of the login digest XOR the leading (up to 64) bits of
  Dovecot's pwhash, sha256(nonce || lower-cased login || 0x00 || password). Binding it to a keyed
  login mask means the stored value reveals nothing without K, and a lookup costs one hash.
K_login and K_pair are 128-bit secret prefixes rather than BLAKE2's key parameter: BLAKE2 has no
length extension, so a secret prefix is a sound PRF, and it avoids the extra 128-byte key block
that halves the speed of keyed BLAKE2 on short inputs (0.49 vs 0.93 us measured here).
All integers are read big-endian from digests, so ingest (vectorised) and lookup (scalar) agree.
"""

from __future__ import annotations

import hashlib

from rempart.breach.settings import DovecotHash

FP_BYTES = 8


PREFIX_BYTES = 16


def derive(key: bytes, label: bytes, size: int = PREFIX_BYTES) -> bytes:
    """A subkey of the corpus key for one use."""
    return hashlib.blake2b(label, key=key, digest_size=size).digest()


def dovecot_pwhash(nonce: str, user: str, password: str, truncate_bits: int = 12) -> str:
    """Dovecot's `pwhash` exactly as it sends it (recipes/dovecot-auth-policy.md §6)."""
    d = hashlib.sha256(nonce.encode() + user.encode() + b"\0" + password.encode()).digest()
    if truncate_bits <= 0 or truncate_bits >= len(d) * 8:
        return d.hex()
    value = int.from_bytes(d, "big") >> (len(d) * 8 - truncate_bits)
    return value.to_bytes((truncate_bits + 7) // 8, "big").hex()


class Fingerprinter:
    """Computes the corpus fingerprints with one key; shared by ingest and lookups."""

    __slots__ = ("_k_login", "_k_pair", "_nonce", "bits", "dovecot", "key_id", "shift")

    def __init__(self, key: bytes, dovecot: DovecotHash) -> None:
        self._k_login = derive(key, b"rempart leaks login v1")
        self._k_pair = derive(key, b"rempart leaks pair v1")
        self.key_id = derive(key, b"rempart leaks key id")[:8].hex()
        self.dovecot = dovecot
        self._nonce = dovecot.nonce.encode()
        self.bits = dovecot.effective_bits
        self.shift = 64 - min(self.bits, 64)

    @property
    def dovecot_tag(self) -> str:
        """Identifies the Dovecot hash settings without revealing the nonce ('' when off)."""
        if not self.dovecot.enabled:
            return ""
        label = b"dovecot " + self._nonce + b" %d" % self.dovecot.truncate_bits
        return hashlib.blake2b(label, key=self._k_pair, digest_size=8).hexdigest()

    def login_digest(self, canonical: bytes) -> bytes:
        """16 bytes: login fingerprint (first 8) and the Dovecot mask (last 8)."""
        return hashlib.blake2b(self._k_login + canonical, digest_size=16).digest()

    def login_fp(self, canonical: str) -> int:
        d = self.login_digest(canonical.encode("utf-8", "surrogatepass"))
        return int.from_bytes(d[:8], "big")

    def pair_fp_bytes(self, canonical: bytes, password: bytes) -> bytes:
        return hashlib.blake2b(
            self._k_pair + canonical + b"\0" + password, digest_size=FP_BYTES
        ).digest()

    def pair_fp(self, canonical: str, password: str) -> bytes:
        """The 8-byte pair fingerprint for a canonical login and a plaintext password."""
        return self.pair_fp_bytes(
            canonical.encode("utf-8", "surrogatepass"), password.encode("utf-8", "surrogatepass")
        )

    def dovecot_fp(self, canonical: str, pwhash: str) -> int | None:
        """The Dovecot fingerprint for a pwhash as Dovecot sent it; None if it cannot match."""
        if not self.dovecot.enabled or len(pwhash) != _hex_len(self.bits):
            return None
        try:
            value = int(pwhash, 16)
        except ValueError:
            return None
        if self.bits > 64:
            value >>= self.bits - 64
        mask = self.login_digest(canonical.encode("utf-8", "surrogatepass"))[8:]
        return int.from_bytes(mask, "big") ^ value


def _hex_len(bits: int) -> int:
    return 2 * ((bits + 7) // 8)
