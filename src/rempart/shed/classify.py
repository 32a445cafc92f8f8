"""Assigns a request (host, path, method) to its route: criticality class and service."""

from __future__ import annotations

from collections.abc import Iterable

from rempart.shed.classes import Criticality
from rempart.shed.config import Route
from rempart.shed.patterns import HostPattern, PathPattern, RoutePattern

ANY_REQUEST = RoutePattern(HostPattern("", suffix=True), PathPattern("", exact=False), frozenset())


class Classifier:
    """First match over routes sorted most specific first; unmatched requests get ``default``."""

    def __init__(
        self, routes: Iterable[Route], default: Criticality, default_service: str = ""
    ) -> None:
        self.routes: tuple[Route, ...] = tuple(
            sorted(routes, key=lambda r: r.pattern.specificity())
        )
        self.default = Route("default", default, ANY_REQUEST, default_service)

    def classify(self, host: str, path: str, method: str) -> Route:
        host = normalise_host(host)
        method = method.upper()
        for route in self.routes:
            if route.pattern.matches(host, path, method):
                return route
        return self.default


def normalise_host(host: str) -> str:
    """Lower-cased host without port (``[v6]:443`` → ``[v6]``)."""
    host = host.strip().lower()
    if host.startswith("["):
        return host.split("]", 1)[0] + "]"
    return host.split(":", 1)[0]
