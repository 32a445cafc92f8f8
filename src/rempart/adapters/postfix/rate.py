"""Recipients per account over the last hour: twelve five-minute buckets per account, in memory,
bounded to the `max_accounts` most recently seen.

The policy service is this counter's only writer. Counts are this node's own and start afresh
when `rempart serve` restarts (an hour's worth at most is forgotten).
"""

from __future__ import annotations

from collections import OrderedDict

BUCKETS = 12
BUCKET_SECONDS = 300.0


class _Account:
    __slots__ = ("counts", "epochs")

    def __init__(self) -> None:
        self.epochs = [-1] * BUCKETS
        self.counts = [0] * BUCKETS


class RecipientCounter:
    """How many recipients each account sent to over the last hour (to within five minutes)."""

    def __init__(self, max_accounts: int) -> None:
        self.max_accounts = max_accounts
        self._accounts: OrderedDict[str, _Account] = OrderedDict()
        self.forgotten = 0  # accounts dropped by the bound

    def __len__(self) -> int:
        return len(self._accounts)

    def count(self, login: str, now: float) -> int:
        """Recipients of `login` in the buckets of the last hour."""
        account = self._accounts.get(login)
        if account is None:
            return 0
        oldest = int(now // BUCKET_SECONDS) - BUCKETS
        return sum(c for e, c in zip(account.epochs, account.counts, strict=True) if e > oldest)

    def add(self, login: str, now: float, recipients: int = 1) -> None:
        accounts = self._accounts
        account = accounts.get(login)
        if account is None:
            account = accounts[login] = _Account()
            if len(accounts) > self.max_accounts:
                accounts.popitem(last=False)
                self.forgotten += 1
        else:
            accounts.move_to_end(login)
        epoch = int(now // BUCKET_SECONDS)
        slot = epoch % BUCKETS
        if account.epochs[slot] != epoch:
            account.epochs[slot] = epoch
            account.counts[slot] = 0
        account.counts[slot] += recipients
