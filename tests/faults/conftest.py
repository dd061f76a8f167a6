"""The fault campaign runs on its own (`make faults`: CANBAO_FAULTS=1), not in `make test`: it
takes the whole machine for about ten minutes."""

import os

collect_ignore_glob = [] if os.environ.get("CANBAO_FAULTS") else ["test_*.py"]
