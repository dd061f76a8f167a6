"""`canbao seed --people N --seed S [--dsn …]`: a synthetic population into the `sources`
database, mounted on the `canbao` command by `add_seed_command`; standalone it also runs as
`python -m canbao_stack.simulators.cli --people N --seed S`."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from dataclasses import fields
from datetime import date
from typing import Any

from canbao_stack.simulators.population import PopulationExists, Rates, SeedReport, seed

DEFAULT_DSN = "postgresql://canbao@127.0.0.1:54320/sources"
_RATE_NAMES = [field.name for field in fields(Rates)]


def add_seed_command(subparsers: Any) -> argparse.ArgumentParser:
    """Add `seed` to an argparse sub-command set (`parser.add_subparsers()`); its handler is
    `args.handler(args)`."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "seed",
        help="generate a synthetic population of Guizhou into the sources database",
        description="Generate a reproducible synthetic population (households, employers, the "
        "five insurances, students, retirees, deaths, prisoners, cross-region insurance, dirty "
        "data) into the business systems' tables of the sources database, with each person's "
        "expected registry outcome in simulator.expected_outcome.",
    )
    parser.add_argument("--people", type=int, default=20_000, help="population size")
    parser.add_argument("--seed", type=int, default=1, help="0..99999; namespaces the keys")
    parser.add_argument(
        "--dsn",
        default=os.environ.get("CANBAO_SOURCES_DSN", DEFAULT_DSN),
        help=f"the sources database (default: $CANBAO_SOURCES_DSN or {DEFAULT_DSN})",
    )
    parser.add_argument(
        "--as-of", type=date.fromisoformat, help="day of the expected outcomes (default: today)"
    )
    parser.add_argument("--loaders", type=int, choices=(1, 2), help="worker processes")
    parser.add_argument(
        "--rate",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help=f"override a dirty-data rate; names: {', '.join(_RATE_NAMES)}",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    parser.set_defaults(handler=run_seed)
    return parser


def run_seed(args: argparse.Namespace) -> None:
    rates = _rates(args.rate)
    progress = None if args.quiet else Progress()
    try:
        report = asyncio.run(
            seed(
                args.dsn,
                args.people,
                args.seed,
                progress=progress,
                rates=rates,
                as_of=args.as_of,
                loaders=args.loaders,
            )
        )
    except PopulationExists as error:
        raise SystemExit(f"canbao seed: {error} (choose another --seed)") from error
    print(summary(report))


class Progress:
    """Prints one line a second at most, and the last one."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.printed = 0.0

    def __call__(self, done: int, total: int) -> None:
        now = time.perf_counter()
        if done < total and now - self.printed < 1.0:
            return
        self.printed = now
        rate = done / max(now - self.started, 1e-9)
        print(
            f"  {done:>11,} / {total:,} people ({done / total:4.0%}), {rate:,.0f} people/s",
            flush=True,
        )


def summary(report: SeedReport) -> str:
    lines = [
        f"seed {report.seed}: {report.people:,} people in {report.seconds:.1f} s "
        f"({report.people_per_second:,.0f} people/s, {report.rows_per_second:,.0f} rows/s, "
        f"{report.loaders} loader{'s' if report.loaders > 1 else ''})"
    ]
    lines += [f"  {table:<34} {rows:>11,}" for table, rows in report.rows.items()]
    return "\n".join(lines)


def _rates(overrides: list[str]) -> Rates:
    values: dict[str, float] = {}
    for override in overrides:
        name, _, value = override.partition("=")
        if name not in _RATE_NAMES:
            raise SystemExit(f"canbao seed: unknown rate {name!r}; known: {', '.join(_RATE_NAMES)}")
        try:
            values[name] = float(value)
        except ValueError:
            raise SystemExit(f"canbao seed: rate {name} needs a number, not {value!r}") from None
    try:
        return Rates(**values)
    except ValueError as error:
        raise SystemExit(f"canbao seed: {error}") from error


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="canbao-seed")
    commands = parser.add_subparsers(dest="command")
    add_seed_command(commands)
    args = parser.parse_args(["seed", *(sys.argv[1:] if argv is None else argv)])
    args.handler(args)


if __name__ == "__main__":
    main()
