"""`python -m bench` (make bench): the benchmarks and how to run each; each prints its figures.

Benchmarks run one at a time (they load the machine's two cores fully) as
`uv run --frozen python -m bench.<name> [options]`; `--help` on each tells its options.
"""

from __future__ import annotations

import ast
from pathlib import Path

HELPERS = {"__init__", "__main__", "events", "processes"}


def main() -> None:
    print(__doc__)
    for path in sorted(Path(__file__).parent.glob("*.py")):
        if path.stem in HELPERS:
            continue
        docstring = ast.get_docstring(ast.parse(path.read_text())) or ""
        first = " ".join(docstring.split("\n\n")[0].split())
        print(f"  python -m bench.{path.stem:<26} {first}")


if __name__ == "__main__":
    main()
