"""HAProxy's ``maxconn`` fitted to the host's file-descriptor limit.

HAProxy needs about two descriptors per connection (client and server side) plus a few per
thread (poller, wake-up pipe) and per listener; it raises its soft ``RLIMIT_NOFILE`` to what it
needs at start and, with ``strict-limits`` (the default since 2.3), refuses to start when the
hard limit is below: ``Cannot raise FD limit to 20008, limit is 20000`` for ``maxconn 9990`` on a
2-thread host. :func:`fit_maxconn` derives a ``maxconn`` that starts, or names the limit to
raise.
"""

from __future__ import annotations

import os
import resource
from dataclasses import dataclass

DEFAULT_MAXCONN = 4096  # with maxconn = 0 (derived): at most this many, fewer if the host says so
FD_RESERVE = 64  # listeners, stats socket, map and log files, resolvers: measured 28 on 2.6


def haproxy_threads() -> int:
    """HAProxy's default ``nbthread``: the CPUs it may run on, at most 64."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return max(1, min(64, cpus))


def needed_fds(maxconn: int, threads: int) -> int:
    """Descriptors HAProxy asks for with ``maxconn`` (an upper bound, see the module doc)."""
    return 2 * maxconn + FD_RESERVE + 4 * threads


def hard_nofile() -> int | None:
    """This process's hard ``RLIMIT_NOFILE`` (None: unlimited)."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    return None if hard == resource.RLIM_INFINITY else int(hard)


class FDLimitError(ValueError):
    """``maxconn`` needs more descriptors than the host allows."""


@dataclass(frozen=True, slots=True)
class Fitted:
    maxconn: int
    why: str  # one line for the generated configuration


def fit_maxconn(configured: int, hard: int | None, threads: int, *, strict: bool = True) -> Fitted:
    """``configured`` (0: derive), checked against the hard descriptor limit ``hard``.

    Raises :class:`FDLimitError` naming the limit to raise when ``configured`` cannot start
    (unless ``strict`` is off: HAProxy then starts with what it gets, warning)."""
    most = None if hard is None else (hard - FD_RESERVE - 4 * threads) // 2
    limit_text = "unlimited" if hard is None else str(hard)
    if configured == 0:
        if most is not None and most < 1:
            raise FDLimitError(
                f"shed.haproxy.maxconn: the hard file-descriptor limit (RLIMIT_NOFILE) is "
                f"{limit_text}, too low for HAProxy; raise it to at least "
                f"{needed_fds(256, threads)} (ulimit -Hn, or LimitNOFILE= in HAProxy's unit)"
            )
        value = DEFAULT_MAXCONN if most is None else min(DEFAULT_MAXCONN, most)
        return Fitted(
            value,
            f"maxconn {value}: derived (shed.haproxy.maxconn = 0) from the hard descriptor "
            f"limit {limit_text}, {threads} threads: needs about {needed_fds(value, threads)} "
            f"descriptors",
        )
    need = needed_fds(configured, threads)
    if most is not None and configured > most:
        message = (
            f"shed.haproxy.maxconn = {configured} needs about {need} file descriptors but the "
            f"hard limit here (RLIMIT_NOFILE) is {hard}: raise it to at least {need} "
            f"(ulimit -Hn {need}, or LimitNOFILE={need} in HAProxy's systemd unit), or set "
            f"maxconn to {max(1, most)} or less (0 derives it)"
        )
        if strict:
            raise FDLimitError(message)
        return Fitted(configured, f"WARNING: {message}; started anyway (no strict-limits)")
    return Fitted(configured, f"maxconn {configured}: needs about {need} descriptors")
