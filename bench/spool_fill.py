"""Fill a stopped mailsuite's outbound spool with benchmark messages (relay workload).

    python bench/spool_fill.py --data-dir DIR --count 10000 --domains d1.test,d2.test --size 2048

Uses mailsuite's own ``mailsuite.relay.spool.Spool`` (the same tmp -> fsync -> rename writes as a
message accepted by SMTP) so that the server, once started, finds the messages queued and
delivers them.  Message i goes to ``rcpt<i>@<domain i mod D>``.
"""

from __future__ import annotations

import argparse
import time


class WallClock:
    def seconds(self) -> float:
        return time.time()


def message(i: int, domain: str, size: int) -> bytes:
    head = (f"From: Bench <bench@bench.test>\r\nTo: <rcpt{i}@{domain}>\r\n"
            f"Subject: relay benchmark {i}\r\nMessage-ID: <relay.{i}@bench.test>\r\n"
            "Date: Mon, 23 Nov 2026 10:00:00 +0000\r\n\r\n").encode()
    line = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789\r\n"
    body = line * max(1, (size - len(head)) // len(line))
    return head + body


def main() -> None:
    from mailsuite.interfaces import SpoolEnvelope, SpoolRecipient
    from mailsuite.relay.service import spool_directory
    from mailsuite.relay.spool import Spool

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--domains", required=True)
    parser.add_argument("--size", type=int, default=2048)
    args = parser.parse_args()
    domains = args.domains.split(",")
    spool = Spool(spool_directory(args.data_dir), WallClock())
    failures = []
    for i in range(args.count):
        domain = domains[i % len(domains)]
        envelope = SpoolEnvelope(sender="bench@bench.test",
                                 recipients=(SpoolRecipient(f"rcpt{i}@{domain}"),))
        d = spool.enqueue(envelope, message(i, domain, args.size))
        d.addErrback(failures.append)
    if failures:
        raise SystemExit(f"{len(failures)} enqueues failed: {failures[0]}")
    print(args.count)


if __name__ == "__main__":
    main()
