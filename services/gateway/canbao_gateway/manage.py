"""Staff accounts from the command line, for the agency's administrators (there is no sign-up):

    python -m canbao_gateway.manage add-staff wang-li --role counter --scope 520102
    python -m canbao_gateway.manage move-staff wang-li --role county --scope 520102
    python -m canbao_gateway.manage disable-staff wang-li

A member of staff who moves post (from the grass-roots platform to the county agency, say) keeps
their account, and with it their name in every decision they took: maker-checker still knows
them (survey refuses to let them approve what they reviewed or submitted). Their tokens stop
working at once; they log in again in the new role.

The password is asked for without echo, or read from standard input with `--password-stdin`
(never from the command line, which other users of the machine and shell histories can see).
The database is the gateway's (GATEWAY_DATABASE_URL)."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys

import sqlalchemy as sa

from canbao_gateway.accounts import create_account
from canbao_gateway.settings import GatewaySettings
from canbao_gateway.staff import InvalidScope, Role, normalise_scope
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
            staff = await create_account(connection, username=username, password=password,
                                         role=role, scope=scope)  # fmt: skip
    finally:
        await database.dispose()
    print(f"added {staff.username}: {staff.role.value}, scope {staff.scope}")
    return 0


async def _move(username: str, role: Role, scope: str) -> int:
    database = Database(GatewaySettings().database_url, pool_size=1)
    try:
        async with database.engine.begin() as connection:
            changed = await connection.execute(
                sa.update(staff_accounts).where(staff_accounts.c.username == username)
                .values(role=role.value, scope=scope)
            )  # fmt: skip
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
                sa.update(staff_accounts).where(staff_accounts.c.username == username)
                .values(active=False)
            )  # fmt: skip
    finally:
        await database.dispose()
    if changed.rowcount == 0:
        print(f"error: no account {username}", file=sys.stderr)
        return 1
    # The database raised the account's token version with it: its tokens stop working now.
    print(f"disabled {username}; its tokens no longer work")
    return 0


def _password(*, from_stdin: bool) -> str:
    password = sys.stdin.readline().rstrip("\n") if from_stdin else getpass.getpass("password: ")
    if len(password) < MINIMUM_PASSWORD_LENGTH:
        raise ValueError(f"the password needs at least {MINIMUM_PASSWORD_LENGTH} characters")
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
    return parser


if __name__ == "__main__":
    sys.exit(main())
