"""The `canbao` command: run the local stack, seed populations, watch topics, migrate."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
from pathlib import Path

from canbao_stack.local import BOOTSTRAP_FILE, StackConfig
from canbao_stack.simulators.cli import add_seed_command


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="canbao", description="canbao (参保) on one machine")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="the whole system on its embedded defaults")
    run.add_argument("--state-dir", type=Path, default=Path(".state"))
    run.add_argument("--postgres-port", type=int, default=54320)
    run.add_argument("--gateway-port", type=int, default=8000)
    run.add_argument("--people", type=int, default=20_000, help="demo population size")
    run.add_argument("--seed", type=int, default=1, help="demo population seed")
    run.add_argument(
        "--split-identity",
        action="store_true",
        help="identity's consumers and its golden-record builder as two processes, as a province "
        "runs them (the builder on the port after reporting's)",
    )
    run.set_defaults(handler=_run)

    add_seed_command(commands)

    watch = commands.add_parser("watch", help="print the events of a topic as they arrive")
    watch.add_argument("topic")
    watch.add_argument("--from-beginning", action="store_true")
    watch.add_argument("--state-dir", type=Path, default=Path(".state"))
    watch.set_defaults(handler=_watch)

    migrate = commands.add_parser("migrate", help="migrate a service's database")
    migrate.add_argument("service")
    migrate.add_argument("--state-dir", type=Path, default=Path(".state"))
    migrate.set_defaults(handler=_migrate)

    mobile = commands.add_parser(
        "mobile-token",
        help="an ID token of the local stack's mobile identity provider, for "
        'POST /api/v1/self/session {"id_token": …}',
    )
    mobile.add_argument("id_number")
    mobile.add_argument("--state-dir", type=Path, default=Path(".state"))
    mobile.set_defaults(handler=_mobile_token)

    args = parser.parse_args(argv)
    args.handler(args)


def _run(args: argparse.Namespace) -> None:
    from canbao_stack.local import LocalStack

    config = StackConfig(
        state_dir=args.state_dir,
        postgres_port=args.postgres_port,
        gateway_port=args.gateway_port,
        demo_people=args.people,
        demo_seed=args.seed,
        split_identity=args.split_identity,
    )
    asyncio.run(LocalStack(config).run())


def _mobile_token(args: argparse.Namespace) -> None:
    from canbao_stack import mobile_idp

    print(mobile_idp.id_token(args.state_dir, args.id_number))


def _migrate(args: argparse.Namespace) -> None:
    """The local stack's database of a service, as `canbao run` migrates it (its own login
    granted rows only); production runs `python -m canbao_platform.migrate` instead."""
    from canbao_stack.local import LocalStack

    asyncio.run(LocalStack(StackConfig(state_dir=args.state_dir)).migrate(args.service))


def _watch(args: argparse.Namespace) -> None:
    from aiokafka import AIOKafkaConsumer

    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if not bootstrap:
        bootstrap_file = args.state_dir / BOOTSTRAP_FILE
        if not bootstrap_file.exists():
            raise SystemExit("no running local stack (start it with `make run`)")
        bootstrap = bootstrap_file.read_text().strip()

    async def watch() -> None:
        consumer = AIOKafkaConsumer(
            args.topic,
            bootstrap_servers=bootstrap,
            auto_offset_reset="earliest" if args.from_beginning else "latest",
            enable_auto_commit=False,
        )
        await consumer.start()
        try:
            async for message in consumer:
                headers = {k: v.decode(errors="replace") for k, v in message.headers}
                kind = headers.get("ce_type", "")
                print(f"{message.topic}[{message.partition}]@{message.offset} {kind}")
                print(f"  key   {(message.key or b'').decode(errors='replace')}")
                print(f"  value {(message.value or b'null').decode(errors='replace')}")
        finally:
            await consumer.stop()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(watch())


if __name__ == "__main__":
    main()
