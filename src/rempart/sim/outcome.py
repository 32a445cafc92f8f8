"""What happens to an attempt after the verdict, the same for both runners (Dovecot semantics).

Owns the rules: deny → no password check, reported as a policy reject; step-up → a deny on
IMAP/POP3/SMTP (no second factor there) and, on web/app, a second factor that legitimate users
pass and attackers do not; delay → the attempt is tarpitted but proceeds.
"""

from __future__ import annotations

from rempart.model import LEGACY_MAIL, Action, Outcome
from rempart.sim.events import Event

ALLOWED, DELAYED, STEPPED_UP, DENIED = "allowed", "delayed", "stepped_up", "denied"
EFFECTS = (ALLOWED, DELAYED, STEPPED_UP, DENIED)


def effect_of(event: Event, action: Action) -> str:
    if action is Action.ALLOW:
        return ALLOWED
    if action is Action.DENY or (action is Action.STEP_UP and event.protocol in LEGACY_MAIL):
        return DENIED
    if action is Action.STEP_UP:
        return STEPPED_UP
    if action is Action.DELAY:
        return DELAYED
    return ALLOWED


def outcome_of(event: Event, effect: str) -> Outcome:
    """The report the authentication backend would send for this event and effect."""
    if effect == DENIED:
        return Outcome(False, policy_reject=True, unknown_login=not event.exists)
    success = event.correct and (effect != STEPPED_UP or event.legit)
    return Outcome(success, policy_reject=False, unknown_login=not event.exists)


def is_takeover(event: Event, effect: str) -> bool:
    """A correct login by the attacker that was let through (delay included)."""
    return not event.legit and event.correct and effect in (ALLOWED, DELAYED)
