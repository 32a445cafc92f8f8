"""Criticality classes (Google SRE style): the order in which traffic is shed under overload."""

from __future__ import annotations

from enum import IntEnum


class Criticality(IntEnum):
    """A request's criticality; a lower value is more important and is shed last."""

    CRITICAL_PLUS = 0  # second factor, payments: the flows that must survive
    CRITICAL = 1  # login, transfers
    SHEDDABLE_PLUS = 2  # browsing pages
    SHEDDABLE = 3  # bulk, search, prefetch: shed first

    @property
    def label(self) -> str:
        """The name used in configuration, maps, metrics and status (e.g. ``critical_plus``)."""
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> Criticality:
        """The class called ``text``; ValueError naming the valid classes otherwise."""
        try:
            return cls[text.strip().upper()]
        except KeyError:
            valid = ", ".join(c.label for c in cls)
            raise ValueError(f"unknown criticality class {text!r} (valid: {valid})") from None


CLASSES: tuple[Criticality, ...] = tuple(Criticality)
