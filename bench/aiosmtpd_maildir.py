"""aiosmtpd peer for the SMTP accept benchmark: every message goes into a Maildir, fsync'd.

Run by ``bench/run.py``: ``python bench/aiosmtpd_maildir.py --port N --maildir DIR``.
Delivery follows the Maildir protocol: write into ``tmp/``, fsync the file, rename into
``new/``, fsync the directory; only then the server answers 250.  The file write runs in the
default thread pool so that the event loop keeps serving other clients meanwhile.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import signal
import socket
import time

from aiosmtpd.smtp import SMTP


class MaildirWriter:
    """aiosmtpd handler: store the message in a Maildir before answering 250."""

    def __init__(self, maildir: str) -> None:
        self.maildir = maildir
        for sub in ("tmp", "new", "cur"):
            os.makedirs(os.path.join(maildir, sub), exist_ok=True)
        self._seq = itertools.count()
        self._host = socket.gethostname()

    def _write(self, data: bytes) -> None:
        name = f"{time.time():.6f}.P{os.getpid()}Q{next(self._seq)}.{self._host}"
        tmp = os.path.join(self.maildir, "tmp", name)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, os.path.join(self.maildir, "new", name))
        dfd = os.open(os.path.join(self.maildir, "new"), os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)

    async def handle_DATA(self, server, session, envelope) -> str:
        data = envelope.original_content or envelope.content
        if isinstance(data, str):
            data = data.encode("utf-8", "surrogateescape")
        await asyncio.get_running_loop().run_in_executor(None, self._write, data)
        return "250 2.0.0 OK"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--maildir", required=True)
    args = parser.parse_args()
    handler = MaildirWriter(args.maildir)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(handler, hostname="aiosmtpd.bench.test", data_size_limit=50 * 1024 * 1024),
        host="127.0.0.1", port=args.port, backlog=256)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(main())
