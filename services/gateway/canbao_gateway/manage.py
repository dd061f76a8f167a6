"""Staff accounts and partner clients from the command line, for the agency's administrators
(there is no sign-up):

    python -m canbao_gateway.manage add-staff wang-li --role counter --scope 520102
    python -m canbao_gateway.manage move-staff wang-li --role county --scope 520102
    python -m canbao_gateway.manage disable-staff wang-li
    python -m canbao_gateway.manage add-partner civil-nanming --department civil \
        --name "南明区民政局" --permission batches --permission comparisons \
        --field registration --field pension --field medical
    python -m canbao_gateway.manage rotate-secret civil-nanming --grace-hours 24
    python -m canbao_gateway.manage callback-credentials civil-nanming \
        --token-url https://mz.example.cn/auth/token --as canbao-registry --secret-stdin
    python -m canbao_gateway.manage signing-key civil-nanming --key <Ed25519 public key>
    python -m canbao_gateway.manage exchanges

A member of staff who moves post (from the grass-roots platform to the county agency, say) keeps
their account, and with it their name in every decision they took: maker-checker still knows
them (survey refuses to let them approve what they reviewed or submitted). Their tokens stop
working at once; they log in again in the new role.

The password is asked for without echo, or read from standard input with `--password-stdin`
(never from the command line, which other users of the machine and shell histories can see).
A partner client's secret is generated (256 bits) and printed once, to hand to the department;
only its hash is kept. `rotate-secret` prints a new one; the old one keeps working for
`--grace-hours` (0: at once, and every token issued with it stops — a leaked secret).
`callback-credentials` registers how the registry authenticates to a partner's DCI callback
endpoints (the partner's own token API, client credentials it gave the agency: the secret is
asked for without echo or read from standard input, and kept sealed under the data key).
`exchanges` prints the reconciliation of each exchange with the national registry (dci_notify.py):
the last pass's counts and what the national side holds by its acknowledgements, as JSON.
The database is the gateway's (GATEWAY_DATABASE_URL)."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import secrets
import sys
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from canbao_contracts.partners import Department
from canbao_gateway import clients
from canbao_gateway.accounts import create_account
from canbao_gateway.dci_notify import exchange_report
from canbao_gateway.settings import GatewaySettings
from canbao_gateway.staff import InvalidScope, Role, normalise_scope
from canbao_gateway.tables import clients as clients_table
from canbao_gateway.tables import staff_accounts
from canbao_platform.db import Database

MINIMUM_PASSWORD_LENGTH = 12


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "add-staff":
            normalise_scope(args.scope)
            password = _password(from_stdin=args.password_stdin)
            return asyncio.run(_add(args.username, password, Role(args.role), args.scope))
        if args.command == "add-partner":
            return asyncio.run(_add_partner(args))
        if args.command == "callback-credentials":
            secret = _password(from_stdin=args.secret_stdin, minimum=1)
            return asyncio.run(
                _callback_credentials(args.client_id, args.token_url, args.as_client, secret)
            )
        if args.command == "signing-key":
            return asyncio.run(_signing_key(args.client_id, None if args.none else args.key))
        if args.command == "exchanges":
            return asyncio.run(_exchanges())
        if args.command == "rotate-secret":
            return asyncio.run(_rotate(args.client_id, timedelta(hours=args.grace_hours)))
        if args.command == "move-staff":
            scope = normalise_scope(args.scope)
            return asyncio.run(_move(args.username, Role(args.role), scope))
        return asyncio.run(_disable(args.username))
    except (InvalidScope, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


async def _add(username: str, password: str, role: Role, scope: str) -> int:
    database = Database(GatewaySettings().database_url, pool_size=1)
    try:
        async with database.engine.begin() as connection:
            exists = await connection.scalar(
                sa.select(sa.func.count()).where(staff_accounts.c.username == username)
            )
            if exists:
                print(f"error: {username} exists already", file=sys.stderr)
                return 1
            staff = await create_account(
                connection, username=username, password=password, role=role, scope=scope
            )
    finally:
        await database.dispose()
    print(f"added {staff.username}: {staff.role.value}, scope {staff.scope}")
    return 0


async def _move(username: str, role: Role, scope: str) -> int:
    database = Database(GatewaySettings().database_url, pool_size=1)
    try:
        async with database.engine.begin() as connection:
            changed = await connection.execute(
                sa.update(staff_accounts)
                .where(staff_accounts.c.username == username)
                .values(role=role.value, scope=scope)
            )
    finally:
        await database.dispose()
    if changed.rowcount == 0:
        print(f"error: no account {username}", file=sys.stderr)
        return 1
    # The database raised the account's token version with it (a new role or scope).
    print(f"moved {username}: {role.value}, scope {scope}; its tokens no longer work")
    return 0


async def _disable(username: str) -> int:
    database = Database(GatewaySettings().database_url, pool_size=1)
    try:
        async with database.engine.begin() as connection:
            changed = await connection.execute(
                sa.update(staff_accounts)
                .where(staff_accounts.c.username == username)
                .values(active=False)
            )
    finally:
        await database.dispose()
    if changed.rowcount == 0:
        print(f"error: no account {username}", file=sys.stderr)
        return 1
    # The database raised the account's token version with it: its tokens stop working now.
    print(f"disabled {username}; its tokens no longer work")
    return 0


async def _add_partner(args: argparse.Namespace) -> int:
    secret = secrets.token_urlsafe(32)
    database = Database(GatewaySettings().database_url, pool_size=1)
    try:
        async with database.engine.begin() as connection:
            exists = await connection.scalar(
                sa.select(sa.func.count()).where(clients_table.c.client_id == args.client_id)
            )
            if exists:
                print(f"error: {args.client_id} exists already", file=sys.stderr)
                return 1
            client = await clients.register(
                connection,
                client_id=args.client_id,
                secret=secret,
                kind=clients.ClientKind.PARTNER,
                name=args.name,
                region=args.region,
                department=args.department,
                permissions=frozenset(clients.Permission(p) for p in args.permission),
                fields=frozenset(clients.Field(f) for f in args.field or ()),
                callback_urls=tuple(args.callback_url or ()),
                signing_public_key=args.signing_key,
            )
    finally:
        await database.dispose()
    sees = ", ".join(sorted(client.fields)) or "no person fields"
    may = ", ".join(sorted(client.permissions))
    print(f"added {client.role_name} client {client.client_id}: may {may}; sees {sees}")
    print(f"client secret (shown once): {secret}")
    return 0


async def _rotate(client_id: str, grace: timedelta) -> int:
    secret = secrets.token_urlsafe(32)
    database = Database(GatewaySettings().database_url, pool_size=1)
    try:
        async with database.engine.begin() as connection:
            found = await clients.rotate_secret(
                connection, client_id, secret=secret, grace=grace, now=datetime.now(UTC)
            )
    finally:
        await database.dispose()
    if not found:
        print(f"error: no client {client_id}", file=sys.stderr)
        return 1
    old = (
        f"the old secret works for {grace.total_seconds() / 3600:g} more hours"
        if grace
        else "the old secret and its tokens no longer work"
    )
    print(f"new client secret for {client_id} (shown once): {secret}; {old}")
    return 0


async def _callback_credentials(client_id: str, token_url: str, as_client: str, secret: str) -> int:
    settings = GatewaySettings()
    database = Database(settings.database_url, pool_size=1)
    try:
        async with database.engine.begin() as connection:
            found = await clients.set_callback_credentials(
                connection,
                settings.sealer(),
                client_id,
                token_url=token_url,
                as_client=as_client,
                secret=secret,
            )
    finally:
        await database.dispose()
    if not found:
        print(f"error: no partner client {client_id}", file=sys.stderr)
        return 1
    print(f"{client_id}: callbacks authenticate at {token_url} as {as_client}")
    return 0


async def _signing_key(client_id: str, key: str | None) -> int:
    database = Database(GatewaySettings().database_url, pool_size=1)
    try:
        async with database.engine.begin() as connection:
            found = await clients.set_signing_key(connection, client_id, key)
    finally:
        await database.dispose()
    if not found:
        print(f"error: no partner client {client_id}", file=sys.stderr)
        return 1
    said = "signs with the new key from its next message" if key else "no longer signs"
    print(f"{client_id} {said}")
    return 0


async def _exchanges() -> int:
    database = Database(GatewaySettings().database_url, pool_size=1)
    try:
        async with database.engine.connect() as connection:
            report = await exchange_report(connection)
    finally:
        await database.dispose()
    print(json.dumps(report, indent=2, ensure_ascii=False))
    return 0


def _password(*, from_stdin: bool, minimum: int = MINIMUM_PASSWORD_LENGTH) -> str:
    password = sys.stdin.readline().rstrip("\n") if from_stdin else getpass.getpass("password: ")
    if len(password) < minimum:
        raise ValueError(f"the password needs at least {minimum} characters")
    return password


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m canbao_gateway.manage",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    add = commands.add_parser("add-staff", help="add a staff account")
    add.add_argument("username")
    add.add_argument("--role", required=True, choices=[role.value for role in Role])
    add.add_argument("--scope", required=True, help="GB/T 2260 code: 52, 520100, 520102, …")
    add.add_argument("--password-stdin", action="store_true")
    move = commands.add_parser("move-staff", help="give an account another role or scope")
    move.add_argument("username")
    move.add_argument("--role", required=True, choices=[role.value for role in Role])
    move.add_argument("--scope", required=True, help="GB/T 2260 code: 52, 520100, 520102, …")
    disable = commands.add_parser("disable-staff", help="stop an account from logging in")
    disable.add_argument("username")
    partner = commands.add_parser("add-partner", help="add a partner department's client")
    partner.add_argument("client_id")
    partner.add_argument("--department", required=True, choices=[d.value for d in Department])
    partner.add_argument("--name", required=True, help="the department, as people know it")
    partner.add_argument("--region", default="52", help="the province (GB/T 2260)")
    partner.add_argument(
        "--permission",
        action="append",
        required=True,
        choices=[p.value for p in clients.Permission],
    )
    partner.add_argument(
        "--field",
        action="append",
        choices=[f.value for f in clients.Field],
        help="what it may see of a person (none by default)",
    )
    partner.add_argument(
        "--callback-url",
        action="append",
        help="where its DCI callbacks may go (https://host/path; repeatable)",
    )
    partner.add_argument(
        "--signing-key", help="its Ed25519 public key (base64 or PEM): it signs its DCI messages"
    )
    rotate = commands.add_parser("rotate-secret", help="give a client a new secret")
    rotate.add_argument("client_id")
    rotate.add_argument(
        "--grace-hours",
        type=float,
        default=24.0,
        help="how long the old secret still works (0: a leaked secret)",
    )
    credentials = commands.add_parser(
        "callback-credentials", help="how the registry authenticates to a partner's callbacks"
    )
    credentials.add_argument("client_id")
    credentials.add_argument("--token-url", required=True, help="the partner's token API")
    credentials.add_argument(
        "--as", dest="as_client", required=True, help="the client_id the partner gave the registry"
    )
    credentials.add_argument("--secret-stdin", action="store_true")
    signing = commands.add_parser("signing-key", help="replace a partner's DCI signing key")
    signing.add_argument("client_id")
    which = signing.add_mutually_exclusive_group(required=True)
    which.add_argument("--key", help="its new Ed25519 public key (base64 or PEM)")
    which.add_argument("--none", action="store_true", help="it no longer signs its messages")
    commands.add_parser(
        "exchanges", help="the reconciliation of each exchange with the national registry"
    )
    return parser


if __name__ == "__main__":
    sys.exit(main())
