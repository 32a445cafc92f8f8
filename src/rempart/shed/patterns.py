"""Route patterns (host, path, methods): matching, containment and overlap between patterns.

Syntax, kept small so that it is decidable and maps one-to-one onto HAProxy ACLs:

* path: ``/login`` matches exactly that path; ``/payments/*`` matches every path starting with
  ``/payments/``; ``*`` matches every path. ``*`` may appear only as the last character.
* host: ``*`` (any host), ``example.com`` (exactly), ``*.example.com`` (any sub-domain of it).
  Hosts are compared lower-cased and without port.
* methods: a list of HTTP methods (upper-cased tokens); empty means any method.

Two patterns *overlap* when some request matches both and neither pattern contains the other;
nested patterns are fine and the more specific one wins.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_PATH_CHARS = re.compile(r"^/[A-Za-z0-9\-._~!$&'()+,;=:@%/]*$")
_HOST_LABELS = re.compile(
    r"^[a-z0-9]([a-z0-9\-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9\-]{0,61}[a-z0-9])?)*$"
)
_METHOD = re.compile(r"^[A-Z]{1,20}$")


@dataclass(frozen=True, slots=True)
class PathPattern:
    """An exact path, or a prefix (``exact`` False); the prefix ``""`` matches every path."""

    value: str
    exact: bool

    @classmethod
    def parse(cls, text: str) -> PathPattern:
        if not isinstance(text, str) or not text:
            raise ValueError("path pattern must be a non-empty string")
        if text == "*":
            return cls("", exact=False)
        body, star = (text[:-1], True) if text.endswith("*") else (text, False)
        if "*" in body:
            raise ValueError(f"path pattern {text!r}: '*' is allowed only at the end")
        if not _PATH_CHARS.match(body):
            raise ValueError(
                f"path pattern {text!r} must start with '/' and hold URL path characters"
            )
        return cls(body, exact=not star)

    def matches(self, path: str) -> bool:
        return path == self.value if self.exact else path.startswith(self.value)

    def contains(self, other: PathPattern) -> bool:
        if self.exact:
            return other.exact and other.value == self.value
        return other.value.startswith(self.value)

    def intersects(self, other: PathPattern) -> bool:
        # With exact paths and prefixes, two patterns meet only when one contains the other.
        return self.contains(other) or other.contains(self)

    def rank(self) -> tuple[int, int]:
        """Smaller is more specific; monotone under containment."""
        return (0, 0) if self.exact else (1, -len(self.value))

    def __str__(self) -> str:
        return self.value if self.exact else self.value + "*"


@dataclass(frozen=True, slots=True)
class HostPattern:
    """Any host (``suffix`` True and ``value`` ""), one host, or every sub-domain of a domain."""

    value: str
    suffix: bool

    @classmethod
    def parse(cls, text: str) -> HostPattern:
        if not isinstance(text, str) or not text:
            raise ValueError("host pattern must be a non-empty string")
        text = text.strip().lower()
        if text == "*":
            return cls("", suffix=True)
        if text.startswith("*."):
            domain = text[2:]
            if not _HOST_LABELS.match(domain):
                raise ValueError(f"host pattern {text!r} is not '*.' followed by a domain name")
            return cls("." + domain, suffix=True)
        if not _HOST_LABELS.match(text):
            raise ValueError(f"host pattern {text!r} is not a host name, '*' or '*.domain'")
        return cls(text, suffix=False)

    @property
    def any(self) -> bool:
        return self.suffix and not self.value

    def matches(self, host: str) -> bool:
        return host.endswith(self.value) if self.suffix else host == self.value

    def contains(self, other: HostPattern) -> bool:
        if not self.suffix:
            return not other.suffix and other.value == self.value
        return other.value.endswith(self.value) and (other.suffix or other.value != self.value)

    def intersects(self, other: HostPattern) -> bool:
        return self.contains(other) or other.contains(self)

    def rank(self) -> tuple[int, int]:
        return (0, 0) if not self.suffix else (1, -len(self.value))

    def __str__(self) -> str:
        if self.any:
            return "*"
        return "*" + self.value if self.suffix else self.value


def parse_methods(value: object) -> frozenset[str]:
    """A set of upper-cased HTTP methods from a list (empty set: any method)."""
    if value is None:
        return frozenset()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple):
        raise ValueError("methods must be a list of HTTP methods")
    methods = set()
    for item in value:
        if not isinstance(item, str) or not _METHOD.match(item.strip().upper()):
            raise ValueError(f"method {item!r} is not an HTTP method token")
        methods.add(item.strip().upper())
    return frozenset(methods)


@dataclass(frozen=True, slots=True)
class RoutePattern:
    """Host, path and methods a route applies to."""

    host: HostPattern
    path: PathPattern
    methods: frozenset[str]  # empty: any

    def matches(self, host: str, path: str, method: str) -> bool:
        return (
            self.path.matches(path)
            and self.host.matches(host)
            and (not self.methods or method in self.methods)
        )

    def _methods_contain(self, other: RoutePattern) -> bool:
        return not self.methods or (bool(other.methods) and other.methods <= self.methods)

    def contains(self, other: RoutePattern) -> bool:
        return (
            self.path.contains(other.path)
            and self.host.contains(other.host)
            and self._methods_contain(other)
        )

    def intersects(self, other: RoutePattern) -> bool:
        methods_meet = not self.methods or not other.methods or bool(self.methods & other.methods)
        return (
            methods_meet and self.path.intersects(other.path) and self.host.intersects(other.host)
        )

    def overlaps(self, other: RoutePattern) -> bool:
        """Some request matches both and neither contains the other (or both are equal)."""
        if not self.intersects(other):
            return False
        if self == other:
            return True
        return not (self.contains(other) or other.contains(self))

    def specificity(self) -> tuple[tuple[int, int], tuple[int, int], int]:
        """Sort key, most specific first: a pattern contained in another sorts before it."""
        return (self.path.rank(), self.host.rank(), len(self.methods) or 1_000)

    def __str__(self) -> str:
        methods = ",".join(sorted(self.methods)) or "*"
        return f"{methods} {self.host}{str(self.path) or '*'}"
