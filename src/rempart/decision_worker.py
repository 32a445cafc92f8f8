"""A decision worker's process (`python -m rempart.decision_worker`), which `rempart serve`
starts when `[server] decision_workers` is set (`rempart.workers` owns their life): it adopts
the primary's listening sockets and control pipe, then runs a `Service` in its worker role.

An entry point like the command line, so it may import the server."""

from __future__ import annotations

import argparse
import logging
import os
import socket
from pathlib import Path

from rempart.datadir import lock, prepare, private_umask, worker_dir
from rempart.workers import Control


def main(argv: list[str] | None = None) -> None:
    """`python -m rempart.decision_worker`: one decision worker, started by `rempart serve`."""
    parser = argparse.ArgumentParser(
        prog="python -m rempart.decision_worker",
        description="A decision worker of `rempart serve`, which starts it; not run by hand.",
    )
    parser.add_argument("--index", type=int, required=True)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--config", default=None)
    parser.add_argument("--listen-fds", required=True)
    parser.add_argument("--control-fd", type=int, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        format=f"%(asctime)s %(levelname)s worker {args.index} %(name)s: %(message)s",
    )
    from rempart.config import load_settings
    from rempart.server import Service, resolve_api_password

    private_umask()
    control = Control(args.control_fd, os.getppid())
    sockets = [socket.socket(fileno=int(fd)) for fd in args.listen_fds.split(",")]
    settings = load_settings(args.config)
    data_dir = Path(args.data_dir)
    holder = lock(prepare(worker_dir(data_dir, args.index)), "rempart decision worker")
    try:
        password, _ = resolve_api_password(settings, data_dir)
        service = Service(settings, data_dir, password, worker=args.index)
        import uvloop

        uvloop.run(service.serve_decisions(sockets, control))
    finally:
        holder.release()


if __name__ == "__main__":
    main()
