"""Exposed accounts' grace: the `[exposure]` settings and the mail fetchers trusted to act for them.

An account whose current password is in an ingested leak keeps its usual mail clients and the
fetchers acting for it for a grace period (the policy rules read the `exposure_grace` and
`known_fetcher` signals). This module owns the settings of that grace and `Fetchers`, the memory
of which addresses fetch mail for many accounts: configured networks (a webmail aggregator the
operator knows) and learned addresses.

Learning is built to be slow and to be lost quickly. An address becomes a learned fetcher only
once `min_accounts` distinct accounts succeeded from it, its first success is `min_days` old, at
most `max_failure_share` of its reported attempts failed, and no web or app login ever succeeded
from it (a carrier's CGNAT, where an attacker may share the victims' address, carries people's
browsers and phone apps; a fetcher speaks only mail protocols). The policy also wants the last hour
of the address to stay below that share, and a learned fetcher acts only for accounts that already
succeeded from its network. An attacker replaying a leak fails on most pairs, so it cannot keep
the share low; one that logs into accounts of its own for days from an address gains nothing for
the exposed accounts it targets, whose networks it never was.
"""

from __future__ import annotations

import ipaddress
import json
from collections import OrderedDict

from rempart.config import ExposureSettings

DAY = 86400.0


class _Record:
    """What is followed of one address that has had a success."""

    __slots__ = ("accounts", "failures", "first", "interactive", "last", "many", "successes")

    def __init__(self, now: float) -> None:
        self.first = now
        self.last = now
        self.successes = 0
        self.failures = 0
        self.accounts: set[int] | None = set()  # dropped once `many` holds
        self.many = False
        self.interactive = False  # a web or app login succeeded from it: people, not a fetcher


class Fetchers:
    """Configured fetcher networks and learned fetcher addresses (the engine is the one writer).

    `observe` is called for every report; `known` answers from memory. Records of addresses that
    reached `min_accounts` are what `snapshot` returns for persistence and `restore` takes back.
    """

    def __init__(self, settings: ExposureSettings) -> None:
        self.settings = settings
        self.records: OrderedDict[str, _Record] = OrderedDict()
        self.many = 0  # records that reached min_accounts (what `snapshot` saves)
        networks = [ipaddress.ip_network(text, strict=False) for text in settings.fetchers]
        self._v4 = [n for n in networks if n.version == 4]
        self._v6 = [n for n in networks if n.version == 6]

    def configured(self, ip: str) -> bool:
        networks = self._v6 if ":" in ip else self._v4
        if not networks:
            return False
        address = ipaddress.ip_address(ip)
        return any(address in n for n in networks)

    def learned(self, ip: str, now: float) -> bool:
        """Many accounts, for long enough, with few failures over the address's life, and never
        a web or app login (which tells a carrier's CGNAT or an office NAT from a fetcher)."""
        record = self.records.get(ip)
        if record is None or not record.many or record.interactive:
            return False
        s = self.settings
        if now - record.first < s.fetcher_min_days * DAY:
            return False
        total = record.successes + record.failures
        return record.failures <= s.fetcher_max_failure_share * total

    def observe(self, ip: str, account: int, success: bool, interactive: bool, now: float) -> bool:
        """Count a reported attempt (a refusal counts as a failure: a replayed leak is mostly
        refused, not failed); True when the address just reached `min_accounts`."""
        records = self.records
        record = records.get(ip)
        if record is None:
            if not success:
                return False  # only addresses that ever succeeded are followed
            record = records[ip] = _Record(now)
            if len(records) > self.settings.fetcher_max_tracked:
                self.many -= records.popitem(last=False)[1].many
        elif success:
            records.move_to_end(ip)
        if not success:
            record.failures += 1
            return False
        record.successes += 1
        record.last = now
        if interactive:
            record.interactive = True
        accounts = record.accounts
        if accounts is None:
            return False
        accounts.add(account)
        if len(accounts) < self.settings.fetcher_min_accounts:
            return False
        record.accounts = None
        record.many = True
        self.many += 1
        return True

    def snapshot(self) -> str:
        """The addresses that reached `min_accounts`, as JSON (for the store)."""
        return json.dumps(
            {
                ip: [r.first, r.last, r.successes, r.failures, r.interactive]
                for ip, r in self.records.items()
                if r.many
            },
            separators=(",", ":"),
        )

    def restore(self, text: str) -> None:
        """Take back a `snapshot`; malformed entries are skipped."""
        try:
            data = json.loads(text)
        except ValueError:
            return
        if not isinstance(data, dict):
            return
        for ip, values in data.items():
            if not (isinstance(values, list) and len(values) == 5):
                continue
            first, last, successes, failures, interactive = values
            record = _Record(float(first))
            record.last = float(last)
            record.successes, record.failures = int(successes), int(failures)
            record.interactive = bool(interactive)
            record.accounts, record.many = None, True
            known = self.records.get(ip)
            if known is None or not known.many:
                self.many += 1
            self.records[ip] = record
