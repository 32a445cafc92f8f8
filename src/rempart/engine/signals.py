"""Signals: the lazily computed facts about one attempt that policy rules read.

One `Signals` object is made per decision; each property looks at in-memory state only, and only
when a rule asks for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from rempart.engine.familiarity import MarkerKind
from rempart.engine.families import SPECS, KeyFamily
from rempart.engine.windows import FAILURES, REJECTS, REPORTS
from rempart.model import LEGACY_MAIL, PROTOCOL_NAMES, Attempt, Posture

_NORMAL: Final = Posture.NORMAL
_FAILURES_ONLY: Final = frozenset(i for i, spec in enumerate(SPECS) if spec.failures_only)
_IP: Final = int(KeyFamily.IP)
_SUBNET: Final = int(KeyFamily.SUBNET)
_LOGIN: Final = int(KeyFamily.LOGIN)
# Familiarity marker prefixes as plain strings (see familiarity.network_marker), for the hot path.
_NETWORK: Final = MarkerKind.NETWORK.value
_DEVICE: Final = MarkerKind.DEVICE.value
_UNSEEN: Final = -2
_UNTRACKED: Final = -1

if TYPE_CHECKING:
    from rempart.engine.distinct import Sketch
    from rempart.engine.engine import Engine
    from rempart.engine.keys import NetKeys


class Signals:
    __slots__ = (
        "_leaked",
        "_memo",
        "_slots",
        "attempt",
        "bucket",
        "dbucket",
        "device",
        "engine",
        "keys",
        "legacy",
        "net",
        "now",
        "posture",
        "protocol",
        "tls",
        "v6",
    )

    def __init__(
        self,
        engine: Engine,
        attempt: Attempt,
        net: NetKeys,
        device: str,
        keys: tuple[str, ...],
        now: float,
    ) -> None:
        self.engine = engine
        self.attempt = attempt
        self.net = net
        self.device = device
        self.keys = keys  # one key per family, in KeyFamily order ("" when absent)
        self.now = now
        self.bucket = int(now // engine.width)
        self.dbucket = int(now // engine.dwidth)
        # Each family's slot in the engine's ring slabs: _UNSEEN not looked up yet, _UNTRACKED
        # the key is not tracked.
        self._slots: list[int] = [_UNSEEN] * len(keys)
        self._memo: dict[tuple[int, int, int], int] = {}
        self._leaked: bool | None = None
        # Cheap facts every rule may read, set once instead of computed per rule.
        protocol = attempt.protocol
        self.protocol = PROTOCOL_NAMES[protocol]
        self.legacy = protocol in LEGACY_MAIL
        self.posture = engine.postures.get(protocol, _NORMAL)
        self.v6 = net.v6
        self.tls = attempt.tls

    def _slot(self, family: int) -> int:
        slot = self._slots[family]
        if slot == _UNSEEN:
            key = self.keys[family]
            # The table answers -1 (_UNTRACKED) for a key it does not track.
            slot = self._slots[family] = self.engine.states.get(key) if key else _UNTRACKED
        return slot

    def _sketch(self, sketches: list[Sketch | None], family: int) -> Sketch | None:
        if family in _FAILURES_ONLY:
            return None  # no sketch in that family (its slots index another slab)
        slot = self._slot(family)
        return None if slot == _UNTRACKED else sketches[slot]

    # --- counters and sketches -------------------------------------------------------------
    def count(self, family: int, kind: int, span: int) -> int:
        slot = self._slots[family]
        if slot == _UNSEEN:
            slot = self._slot(family)
        if slot == _UNTRACKED:
            return 0
        if family in _FAILURES_ONLY:
            if kind != FAILURES:
                return 0
            return self.engine.pair_rings.total(slot, 0, span, self.bucket)
        return self.engine.rings.total(slot, kind, span, self.bucket)

    def failed_logins(self, family: int, span: int) -> int:
        """Distinct failing logins from a source (estimates are memoised: rules share them)."""
        memo = self._memo.get((0, family, span))
        if memo is not None:
            return memo
        sketch = self._sketch(self.engine.peer_sketches, family)
        value = 0
        if sketch is not None:
            value = sketch.estimate(span, self.dbucket, self.engine.dsize)
        self._memo[(0, family, span)] = value
        return value

    def failing_ips(self, span: int) -> int:
        return self.failed_logins(_LOGIN, span)  # the login's sketch holds its failing IPs

    def established_users(self, family: int) -> int:
        return self._users(family, True)

    def successful_users(self, family: int) -> int:
        return self._users(family, False)

    def _users(self, family: int, established: bool) -> int:
        memo = self._memo.get((1 + established, family, 0))
        if memo is not None:
            return memo
        e = self.engine
        sketch = self._sketch(e.established_sketches if established else e.user_sketches, family)
        value = 0
        if sketch is not None:
            value = sketch.estimate(e.ssize, int(self.now // e.swidth), e.ssize)
        self._memo[(1 + established, family, 0)] = value
        return value

    def _shared(self, family: int, minimum: int) -> bool:
        """Many established users; or many successful users and mostly successes in the hour
        (an attacker replaying a leaked list succeeds on a few accounts among many failures)."""
        if self.established_users(family) >= minimum:
            return True
        if self.successful_users(family) < 2 * minimum:
            return False
        span = self.engine.size
        return 4 * self.count(family, FAILURES, span) <= self.count(family, REPORTS, span)

    # --- booleans and values -----------------------------------------------------------------
    @property
    def familiar_network(self) -> bool:
        return self.engine.familiarity.familiar(
            self.attempt.login, _NETWORK + self.net.subnet, self.now
        )

    @property
    def familiar_device(self) -> bool:
        # A mail client's IMAP ID ("Thunderbird 115") is shared by millions and trivially
        # copied: on legacy protocols only the network makes an attempt familiar.
        return (
            bool(self.device)
            and self.attempt.protocol not in LEGACY_MAIL
            and self.engine.familiarity.familiar(
                self.attempt.login, _DEVICE + self.device, self.now
            )
        )

    @property
    def familiar(self) -> bool:
        return self.familiar_network or self.familiar_device

    @property
    def usual_network(self) -> bool:
        """A familiar network whose address few others use (a home, an office behind one NAT;
        not a carrier's CGNAT address, where any of thousands of subscribers may be an attacker)
        and which is not failing on several logins or refused several times in the hour."""
        if not self.familiar_network:
            return False
        # A source replaying a leak fails on many logins and is refused on leaked pairs.
        span = self.engine.size
        if self.count(0, REJECTS, span) >= 5 or self.failed_logins(0, self.engine.dsize) >= 5:
            return False
        return self.established_users(0) < self.engine.exposure.usual_max_users

    @property
    def known_account(self) -> bool:
        return self.engine.familiarity.known_account(self.attempt.login)

    @property
    def has_device(self) -> bool:
        return bool(self.device)

    @property
    def shared_ip(self) -> bool:
        return self._shared(_IP, self.engine.settings.engine.shared_ip_min_users)

    @property
    def shared_subnet(self) -> bool:
        return self._shared(_SUBNET, self.engine.settings.engine.shared_subnet_min_users)

    @property
    def leaked_pair(self) -> bool:
        leaked = self._leaked
        if leaked is None:  # several leak rules ask; a Dovecot pwhash costs a keyed hash
            leaked = self._leaked = self.engine.leaks.leaked_pair(self.attempt)
        return leaked

    @property
    def login_exposed(self) -> bool:
        return self.engine.leaks.login_exposed(self.attempt.login)

    @property
    def account_restricted(self) -> bool:
        return self.engine.leaks.account_restricted(self.attempt.login)

    @property
    def exposure_grace(self) -> bool:
        """The account is exposed (restricted, or this is a leaked pair) and its exposure was
        first seen less than `[exposure] grace_days` ago (the first ask starts the clock)."""
        if not (self.account_restricted or self.leaked_pair):
            return False
        engine, now = self.engine, self.now
        return now - engine.leaks.exposure_seen(self.attempt.login, now) < engine.exposure.grace_s

    @property
    def known_fetcher(self) -> bool:
        """A configured fetcher network; or a learned fetcher address that already fetched for
        this account (its network is familiar) and whose last hour is mostly successes."""
        fetchers, ip = self.engine.fetchers, self.net.ip
        if fetchers.configured(ip):
            return True
        if not fetchers.learned(ip, self.now) or not self.familiar_network:
            return False
        span = self.engine.size
        refused = self.count(0, FAILURES, span) + self.count(0, REJECTS, span)
        share = self.engine.exposure.fetcher_max_failure_share
        return refused <= share * self.count(0, REPORTS, span)

    @property
    def popular_password(self) -> bool:
        return self.attempt.password_popular

    @property
    def app_password(self) -> bool:
        return self.attempt.app_password

    @property
    def app_passwords_only(self) -> bool:
        return self.attempt.app_passwords_only

    def explain(self) -> dict[str, object]:
        """Every boolean signal's value, for the dashboard and `rempart explain`."""
        names = (
            "familiar_network",
            "familiar_device",
            "usual_network",
            "known_account",
            "shared_ip",
            "shared_subnet",
            "leaked_pair",
            "login_exposed",
            "account_restricted",
            "exposure_grace",
            "known_fetcher",
            "popular_password",
            "app_password",
            "app_passwords_only",
            "legacy",
            "posture",
        )
        return {n: getattr(self, n) for n in names}
