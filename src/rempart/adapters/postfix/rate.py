"""Recipients per account over the last hour: twelve five-minute buckets per account, in memory,
bounded to the `max_accounts` most recently seen.

The policy service is this counter's only writer. Counts are this node's own and start afresh
when `rempart serve` restarts (an hour's worth at most is forgotten).
"""

from __future__ import annotations

from array import array
from collections import OrderedDict

BUCKETS = 12
BUCKET_SECONDS = 300.0
_EMPTY = array("I", [0] * (BUCKETS + 1))


class RecipientCounter:
    """How many recipients each account sent to over the last hour (to within five minutes).

    One `array` per account: the latest bucket's number, then the twelve buckets' counts (a
    ring indexed by bucket number); buckets older than the hour are zeroed as time moves on."""

    def __init__(self, max_accounts: int) -> None:
        self.max_accounts = max_accounts
        self._accounts: OrderedDict[str, array[int]] = OrderedDict()
        self.forgotten = 0  # accounts dropped by the bound

    def __len__(self) -> int:
        return len(self._accounts)

    def count(self, login: str, now: float) -> int:
        """Recipients of `login` in the buckets of the last hour."""
        ring = self._accounts.get(login)
        if ring is None:
            return 0
        epoch = int(now // BUCKET_SECONDS)
        latest = ring[0]
        first = max(latest - BUCKETS + 1, epoch - BUCKETS + 1)
        return sum(ring[1 + e % BUCKETS] for e in range(first, latest + 1))

    def add(self, login: str, now: float, recipients: int = 1) -> None:
        accounts = self._accounts
        epoch = int(now // BUCKET_SECONDS)
        ring = accounts.get(login)
        if ring is None:
            ring = accounts[login] = array("I", _EMPTY)
            ring[0] = epoch
            if len(accounts) > self.max_accounts:
                accounts.popitem(last=False)
                self.forgotten += 1
        else:
            accounts.move_to_end(login)
            latest = ring[0]
            if epoch > latest:  # zero the buckets skipped since, at most the whole ring
                for e in range(max(latest + 1, epoch - BUCKETS + 1), epoch + 1):
                    ring[1 + e % BUCKETS] = 0
                ring[0] = epoch
            elif epoch < latest - BUCKETS + 1:
                return  # older than the hour kept (a clock step back): nothing to count
        ring[1 + epoch % BUCKETS] += recipients
