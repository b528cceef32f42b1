"""The ``mailsuite`` administration command.

    mailsuite [--config FILE] user add ADDRESS [--password-stdin] [--quota-bytes N] [--quota-messages N]
    mailsuite [--config FILE] user passwd ADDRESS [--password-stdin]
    mailsuite [--config FILE] user del ADDRESS
    mailsuite [--config FILE] user list
    mailsuite [--config FILE] user quota ADDRESS [--bytes N|default] [--messages N|default]
    mailsuite [--config FILE] alias add ALIAS TARGET [TARGET...]
    mailsuite [--config FILE] alias del ALIAS [TARGET...]
    mailsuite [--config FILE] alias list
    mailsuite [--config FILE] domain add|del DOMAIN
    mailsuite [--config FILE] domain list
    mailsuite [--config FILE] catchall set DOMAIN TARGET | catchall del DOMAIN | catchall list
    mailsuite [--config FILE] dns
    mailsuite [--config FILE] queue list|show ID|flush [ID]|hold ID|release ID|delete ID
    mailsuite [--config FILE] config          (prints the effective configuration)

It works on the files under ``data_dir`` and needs no running server; a running server sees
account changes at once (it re-reads ``accounts.json`` when it changes). Exit codes: 0 success,
1 the operation failed (the message says why), 2 bad command line.
"""

from __future__ import annotations

import argparse
import dataclasses
import getpass
import json
import socket
import sys
from collections.abc import Sequence
from typing import Any

from mailsuite.accounts import FileAccounts
from mailsuite.config import SERVICES, Config, load_config
from mailsuite.errors import MailsuiteError
from mailsuite.interfaces import Quota

__all__ = ["main"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


class CommandError(Exception):
    """A command cannot be done; printed as ``mailsuite: error: <message>``."""


def _read_password(args: argparse.Namespace, address: str) -> str:
    if args.password_stdin:
        line = sys.stdin.readline()
        password = line.removesuffix("\n")
        password = password.removesuffix("\r")
    else:
        if not sys.stdin.isatty():
            raise CommandError("no terminal to ask the password on; use --password-stdin")
        password = getpass.getpass(f"Password for {address}: ")
        if getpass.getpass("Repeat the password: ") != password:
            raise CommandError("the passwords differ")
    if not password:
        raise CommandError("empty password")
    return password


def _accounts(config: Config) -> FileAccounts:
    return FileAccounts.in_data_dir(config.data_dir, config.domains)


# --- commands ----------------------------------------------------------------------------


def cmd_user_add(config: Config, args: argparse.Namespace) -> None:
    accounts = _accounts(config)
    from mailsuite.address import canonical

    address = canonical(args.address)
    if accounts.user_exists(address):
        raise CommandError(f"user {address} already exists")
    password = _read_password(args, address)
    quota = Quota(args.quota_bytes, args.quota_messages)
    user = accounts.add_user(address, password, quota)
    print(f"user {user} added")


def cmd_user_passwd(config: Config, args: argparse.Namespace) -> None:
    accounts = _accounts(config)
    from mailsuite.address import canonical

    address = canonical(args.address)
    if not accounts.user_exists(address):
        raise CommandError(f"no user {address}")
    accounts.set_password(address, _read_password(args, address))
    print(f"password of {address} changed")


def cmd_user_del(config: Config, args: argparse.Namespace) -> None:
    accounts = _accounts(config)
    accounts.remove_user(args.address)
    print(f"user {args.address} deleted (its mail stays in {config.data_dir})")


def cmd_user_list(config: Config, args: argparse.Namespace) -> None:
    accounts = _accounts(config)
    for user in accounts.list_users():
        quota = accounts.quota_of(user)
        extra = []
        if quota.bytes_limit is not None:
            extra.append(f"quota_bytes={quota.bytes_limit}")
        if quota.messages_limit is not None:
            extra.append(f"quota_messages={quota.messages_limit}")
        print(" ".join([user, *extra]))


_KEEP = object()  # an option left out of `user quota`: that limit stays as it is


def _quota_limit(text: str) -> int | None:
    """A `user quota` value: a number, or "default" for the [store] default."""
    if text.lower() == "default":
        return None
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'default', not {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError("a limit cannot be negative")
    return value


def cmd_user_quota(config: Config, args: argparse.Namespace) -> None:
    accounts = _accounts(config)
    current = accounts.quota_of(args.address)
    quota = Quota(current.bytes_limit if args.bytes is _KEEP else args.bytes,
                  current.messages_limit if args.messages is _KEEP else args.messages)
    accounts.set_quota(args.address, quota)

    def shown(limit: int | None) -> str:
        return "default" if limit is None else str(limit)

    print(f"quota of {args.address}: bytes={shown(quota.bytes_limit)} "
          f"messages={shown(quota.messages_limit)}")


def cmd_alias_add(config: Config, args: argparse.Namespace) -> None:
    accounts = _accounts(config)
    accounts.add_alias(args.alias, args.targets)
    if accounts.user_exists(args.alias):
        print(f"note: {args.alias} is also a user; its mail now goes to the alias targets "
              "(add the user itself as a target to keep a copy)", file=sys.stderr)
    print(f"alias {args.alias} -> {', '.join(accounts.list_aliases()[_canon(args.alias)])}")


def _canon(address: str) -> str:
    from mailsuite.address import canonical

    return canonical(address)


def cmd_alias_del(config: Config, args: argparse.Namespace) -> None:
    _accounts(config).remove_alias(args.alias, args.targets)
    what = f"targets {', '.join(args.targets)} of alias" if args.targets else "alias"
    print(f"{what} {args.alias} deleted")


def cmd_alias_list(config: Config, args: argparse.Namespace) -> None:
    for alias, targets in _accounts(config).list_aliases().items():
        print(f"{alias} -> {', '.join(targets)}")


def cmd_domain_add(config: Config, args: argparse.Namespace) -> None:
    _accounts(config).add_domain(args.domain)
    print(f"domain {args.domain} added")


def cmd_domain_del(config: Config, args: argparse.Namespace) -> None:
    _accounts(config).remove_domain(args.domain)
    print(f"domain {args.domain} deleted")


def cmd_domain_list(config: Config, args: argparse.Namespace) -> None:
    accounts = _accounts(config)
    static = accounts.static_domains()
    for domain in sorted(accounts.local_domains()):
        print(f"{domain} (config file)" if domain in static else domain)


def cmd_catchall_set(config: Config, args: argparse.Namespace) -> None:
    _accounts(config).set_catch_all(args.domain, args.target)
    print(f"catch-all of {args.domain} -> {args.target}")


def cmd_catchall_del(config: Config, args: argparse.Namespace) -> None:
    _accounts(config).set_catch_all(args.domain, None)
    print(f"catch-all of {args.domain} removed")


def cmd_catchall_list(config: Config, args: argparse.Namespace) -> None:
    for domain, target in _accounts(config).catch_alls().items():
        print(f"{domain} -> {target}")


def _port_of(description: str) -> int | None:
    """The TCP port of an endpoint string (``tcp:587``, ``tcp:port=587:interface=...``)."""
    parts = description.split(":")
    if parts[0] not in ("tcp", "tcp6", "ssl"):
        return None
    for part in parts[1:]:
        key, eq, value = part.partition("=")
        if (eq and key == "port") or (not eq and key.isdigit()):
            value = value if eq else key
            return int(value) if value.isdigit() else None
    return None


def _public_ips(hostname: str) -> tuple[list[str], list[str]]:
    v4: set[str] = set()
    v6: set[str] = set()
    try:
        for family, *_rest, sockaddr in socket.getaddrinfo(hostname, None):
            ip = str(sockaddr[0])
            if ip.startswith(("127.", "::1", "fe80")):
                continue
            (v6 if family == socket.AF_INET6 else v4).add(ip)
    except OSError:
        pass
    return sorted(v4), sorted(v6)


def dns_records(config: Config, domains: Sequence[str]) -> str:
    """The zone-file lines a site must publish for ``domains`` (see ``mailsuite dns``)."""
    host = config.hostname
    v4, v6 = _public_ips(host)
    out = [
        f"; DNS records for mailsuite at {host}. Publish them in each domain's zone.",
        "; The host name itself needs address records, and its IP a PTR record back to it",
        "; (many receivers refuse mail from an IP whose reverse name does not match).",
        f"{host}.\tIN A\t{v4[0] if v4 else '<public IPv4 of this server>'}",
    ]
    if v6:
        out.append(f"{host}.\tIN AAAA\t{v6[0]}")
    else:
        out.append(f"; {host}.\tIN AAAA\t<public IPv6 of this server, if it has one>")
    ports: dict[str, int | None] = {}
    for name in SERVICES:
        found = [_port_of(d) for d in getattr(config.listen, name)]
        ports[name] = next((p for p in found if p), None)
    smarthost = config.relay.smarthost.rsplit(":", 1)[0] if config.relay.smarthost else ""
    signer = None
    if config.dkim.enabled:
        from mailsuite.dkim import DkimSigner

        signer = DkimSigner(config.state_dir / "dkim", config.dkim)
    for domain in domains:
        out += ["", f"; --- {domain}", f"{domain}.\tIN MX\t10 {host}."]
        if smarthost:
            # Mail leaves through the provider's servers, not ours: SPF must name theirs.
            out += [f"; Outgoing mail leaves through the smarthost {smarthost}: put the SPF",
                    "; mechanism your provider documents (usually include:...) in place of <...>.",
                    f'{domain}.\tIN TXT\t"v=spf1 include:<your provider\'s SPF domain> -all"']
        else:
            out.append(f'{domain}.\tIN TXT\t"v=spf1 mx -all"')
        if signer is not None:
            out += ["; DKIM: the public half of the key mailsuite signs this domain's mail with.",
                    signer.dns_record(domain),
                    "; DMARC: start with p=none, read the reports sent to rua, then raise the",
                    "; policy to p=quarantine or p=reject."]
        else:
            out += ["; DMARC: [dkim] is off, so DMARC passes on SPF alignment alone (forwarded",
                    "; mail then fails it). Start with p=none and read the reports sent to rua."]
        out += [
            f'_dmarc.{domain}.\tIN TXT\t"v=DMARC1; p=none; rua=mailto:postmaster@{domain}"',
            "; RFC 6186 / RFC 8314 service records, so mail clients find the servers:",
        ]
        for name, srv in (("submissions", "_submissions"), ("submission", "_submission"),
                          ("imaps", "_imaps"), ("imap", "_imap"),
                          ("pop3s", "_pop3s"), ("pop3", "_pop3")):
            port = ports[name]
            if port is None:
                out.append(f"{srv}._tcp.{domain}.\tIN SRV\t0 0 0 .\t; not offered")
            else:
                note = "" if port == SERVICES[name][1] else (
                    f"\t; port {port} is not the standard {SERVICES[name][1]}"
                )
                out.append(f"{srv}._tcp.{domain}.\tIN SRV\t0 1 {port} {host}.{note}")
        out.append(f"; Thunderbird-style autoconfig (autoconfig.{domain}) needs a web server; "
                   "the SRV records above are enough for RFC 6186 clients.")
    if ports["smtp"] != 25:
        out += ["", (f"; warning: the MX listener is on port {ports['smtp']}; other servers "
                     "deliver only to port 25 (set [listen] smtp = [\"tcp:port=25\"]).")]
    return "\n".join(out)


def cmd_dns(config: Config, args: argparse.Namespace) -> None:
    accounts = _accounts(config)
    domains = args.domains or sorted(accounts.local_domains())
    print(dns_records(config, domains))


def _admin() -> Any:
    try:
        from mailsuite.relay import admin
    except ImportError as exc:
        raise CommandError(f"queue administration is not available ({exc})") from None
    return admin


def cmd_queue(config: Config, args: argparse.Namespace) -> None:
    admin = _admin()
    action = args.queue_action
    try:
        if action == "list":
            rows = admin.list_queue(config)
            if hasattr(admin, "format_queue"):
                sys.stdout.write(admin.format_queue(rows))
            else:
                print(json.dumps(rows, indent=1, default=str))
        elif action == "show":
            print(json.dumps(admin.show(config, args.id), indent=1, default=str))
        elif action == "flush":
            count = admin.flush(config, args.id)
            print(f"{count} message(s) scheduled for delivery now")
        else:
            getattr(admin, action)(config, args.id)
            print(f"{args.id}: {action} done")
    except getattr(admin, "QueueError", MailsuiteError) as exc:
        raise CommandError(str(exc)) from None


def cmd_config(config: Config, args: argparse.Namespace) -> None:
    def plain(value: Any) -> Any:
        if dataclasses.is_dataclass(value):
            return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        return value if isinstance(value, (int, float, str, bool)) or value is None else str(value)

    data = plain(config)
    if "relay" in data and data["relay"].get("smarthost_password"):
        data["relay"]["smarthost_password"] = "<redacted>"
    print(json.dumps(data, indent=1))


# --- argument parsing --------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="mailsuite",
        description="Administer a mailsuite mail server: users, aliases, domains, queue, DNS.",
    )
    from mailsuite import __version__

    p.add_argument("--version", action="version", version=f"mailsuite {__version__}")
    p.add_argument("--config", "-c", metavar="FILE",
                   help="the TOML configuration (default: ./mailsuite.toml if present)")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    user = sub.add_parser("user", help="mail accounts").add_subparsers(
        dest="action", required=True, metavar="ACTION")
    a = user.add_parser("add", help="create an account (asks the password)")
    a.add_argument("address")
    a.add_argument("--password-stdin", action="store_true",
                   help="read the password from the first line of standard input")
    a.add_argument("--quota-bytes", type=int, default=None, metavar="N")
    a.add_argument("--quota-messages", type=int, default=None, metavar="N")
    a.set_defaults(func=cmd_user_add)
    a = user.add_parser("passwd", help="change a password")
    a.add_argument("address")
    a.add_argument("--password-stdin", action="store_true")
    a.set_defaults(func=cmd_user_passwd)
    a = user.add_parser("del", help="delete an account (its mail stays on disk)")
    a.add_argument("address")
    a.set_defaults(func=cmd_user_del)
    user.add_parser("list", help="list accounts").set_defaults(func=cmd_user_list)
    a = user.add_parser("quota", help="set limits (a limit left out stays as it is; "
                                      "'default' returns to the [store] default)")
    a.add_argument("address")
    a.add_argument("--bytes", type=_quota_limit, default=_KEEP, metavar="N|default")
    a.add_argument("--messages", type=_quota_limit, default=_KEEP, metavar="N|default")
    a.set_defaults(func=cmd_user_quota)

    alias = sub.add_parser("alias", help="aliases (forwarding addresses)").add_subparsers(
        dest="action", required=True, metavar="ACTION")
    a = alias.add_parser("add", help="deliver ALIAS to TARGETs (local or remote)")
    a.add_argument("alias")
    a.add_argument("targets", nargs="+", metavar="TARGET")
    a.set_defaults(func=cmd_alias_add)
    a = alias.add_parser("del", help="delete an alias, or only some of its targets")
    a.add_argument("alias")
    a.add_argument("targets", nargs="*", metavar="TARGET")
    a.set_defaults(func=cmd_alias_del)
    alias.add_parser("list", help="list aliases").set_defaults(func=cmd_alias_list)

    domain = sub.add_parser("domain", help="local domains").add_subparsers(
        dest="action", required=True, metavar="ACTION")
    for name, func, text in (("add", cmd_domain_add, "accept mail for a domain"),
                             ("del", cmd_domain_del, "stop accepting mail for an empty domain")):
        a = domain.add_parser(name, help=text)
        a.add_argument("domain")
        a.set_defaults(func=func)
    domain.add_parser("list", help="list local domains").set_defaults(func=cmd_domain_list)

    catchall = sub.add_parser("catchall", help="catch-all address per domain").add_subparsers(
        dest="action", required=True, metavar="ACTION")
    a = catchall.add_parser("set", help="unknown addresses at DOMAIN go to TARGET")
    a.add_argument("domain")
    a.add_argument("target")
    a.set_defaults(func=cmd_catchall_set)
    a = catchall.add_parser("del", help="unknown addresses at DOMAIN are refused again")
    a.add_argument("domain")
    a.set_defaults(func=cmd_catchall_del)
    catchall.add_parser("list", help="list catch-alls").set_defaults(func=cmd_catchall_list)

    a = sub.add_parser("dns", help="print the DNS records to publish")
    a.add_argument("domains", nargs="*", metavar="DOMAIN", help="default: every local domain")
    a.set_defaults(func=cmd_dns)

    queue = sub.add_parser("queue", help="the outbound queue").add_subparsers(
        dest="queue_action", required=True, metavar="ACTION")
    queue.add_parser("list", help="list queued messages").set_defaults(func=cmd_queue)
    for name, text in (("show", "show one message's envelope and header"),
                       ("hold", "stop delivery attempts"), ("release", "resume a held message"),
                       ("delete", "drop a message without a bounce")):
        a = queue.add_parser(name, help=text)
        a.add_argument("id")
        a.set_defaults(func=cmd_queue)
    a = queue.add_parser("flush", help="retry now (every message, or one)")
    a.add_argument("id", nargs="?")
    a.set_defaults(func=cmd_queue)

    sub.add_parser("config", help="print the effective configuration").set_defaults(
        func=cmd_config)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``mailsuite`` command; returns the exit code."""
    args = _parser().parse_args(argv)
    try:
        config = load_config(args.config)
        args.func(config, args)
    except (CommandError, MailsuiteError, ValueError, OSError) as exc:
        print(f"mailsuite: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("mailsuite: interrupted", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
