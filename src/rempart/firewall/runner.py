"""Running nft: one process per batch (`nft -f -`, the batch on its stdin), never on the
event loop's time (an asyncio subprocess).

Why the binary and not libnftables' Python binding: the binding is Debian's python3-nftables,
built for the system interpreter and not on PyPI, so Rempart's own interpreter (a virtualenv or
another Python) cannot import it; and a command prefix (`sudo -n nft`, `ip netns exec NS nft`)
lets a process without CAP_NET_ADMIN, or a test in a network namespace, use the same code. A
batch of thousands of elements costs one process, a few milliseconds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence


class NftError(Exception):
    """nft could not be run, timed out, or refused the batch; the message has its words."""


class NftRunner:
    def __init__(self, command: Sequence[str], timeout: float = 30.0) -> None:
        self.command = tuple(command)
        self.timeout = timeout

    async def apply(self, script: str) -> None:
        """Run one batch (one nft transaction: all of it or nothing); NftError on failure."""
        await self._run(["-f", "-"], script)

    async def has_chain(self, table: str, chain: str) -> bool:
        """Whether the table and its chain exist (False after `nft flush ruleset`); NftError
        when nft itself cannot be run."""
        try:
            await self._run(["list", "chain", "inet", table, chain])
        except NftRefused:
            return False
        return True

    async def _run(self, args: list[str], stdin: str | None = None) -> str:
        argv = [*self.command, *args]
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
        except OSError as exc:
            raise NftError(f"cannot run {argv[0]}: {exc.strerror or exc}") from None
        try:
            out, err = await asyncio.wait_for(
                proc.communicate(stdin.encode() if stdin is not None else None), self.timeout
            )
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise NftError(f"{' '.join(argv)}: no answer in {self.timeout:g} s, killed") from None
        if proc.returncode != 0:
            text = err.decode(errors="replace").strip() or f"exit status {proc.returncode}"
            raise NftRefused(_short(text))
        return out.decode(errors="replace")


class NftRefused(NftError):
    """nft ran and refused (a bad batch, a missing table, no permission)."""


def _short(text: str, limit: int = 600) -> str:
    return text if len(text) <= limit else text[:limit] + " ..."
