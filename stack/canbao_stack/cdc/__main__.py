"""`python -m canbao_stack.cdc [options]`: the CDC bridge as a process (see config.py)."""

import logging
import sys

from canbao_stack.cdc.bridge import run_bridge
from canbao_stack.cdc.config import parse_args


def main() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)-5s %(name)s: %(message)s"
    )
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    sys.exit(run_bridge(parse_args()))


if __name__ == "__main__":
    main()
