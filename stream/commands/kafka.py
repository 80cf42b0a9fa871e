"""`sensorstream kafka start|stop|status`: the local single-node Kafka broker."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from stream.commands.arguments import port

if TYPE_CHECKING:
    from stream.kafka.local_broker import LocalKafka


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `kafka` command group and its start/stop/status subcommands."""
    parser = subparsers.add_parser(
        "kafka",
        help="run a local Apache Kafka broker (KRaft, one node) on 127.0.0.1",
        description="A real Apache Kafka 4.x broker for development and tests; "
        "jars come from Maven Central once, state lives in the data dir.",
    )
    actions = parser.add_subparsers(dest="kafka_command", metavar="ACTION", required=True)
    for name, handler, text in (
        ("start", _start, "start the broker in the background and wait until it answers"),
        ("stop", _stop, "stop the broker (SIGTERM, SIGKILL after 30 s); exit 1 if none ran"),
        ("status", _status, "print bootstrap, pid and data dir; exit 1 if not running"),
    ):
        action = actions.add_parser(name, help=text, description=text)
        action.add_argument(
            "--port", type=port, default=9092, help="client port on 127.0.0.1 (default 9092)"
        )
        action.add_argument(
            "--data-dir",
            type=Path,
            default=None,
            help="broker state dir (default ~/.cache/sensorstream/kafka-data/PORT; "
            "stop and status find the broker on --port without it)",
        )
        action.set_defaults(func=handler)


def _broker(args: argparse.Namespace) -> LocalKafka:
    """The LocalKafka the arguments describe (imported here: it pulls in kafka-python)."""
    from stream.kafka.local_broker import LocalKafka

    # kafka-python narrates every readiness probe at INFO; only its problems matter here.
    logging.getLogger("kafka").setLevel(max(logging.WARNING, logging.getLogger().level))
    return LocalKafka(port=args.port, data_dir=args.data_dir)


def _running_broker(args: argparse.Namespace) -> LocalKafka:
    """The broker stop/status act on: the one on --port unless --data-dir names one."""
    from stream.kafka.local_broker import find_broker

    if args.data_dir is None:
        found = find_broker(args.port)
        if found is not None:
            return found
    return _broker(args)


def _not_running(broker: LocalKafka) -> str:
    """'not running' with the --data-dir to pass when a broker from another dir has the port."""
    from stream.kafka.local_broker import find_broker

    line = f"not running: bootstrap={broker.bootstrap} data_dir={broker.data_dir}"
    other = find_broker(broker.port)
    if other is not None and other.data_dir != broker.data_dir:
        line += (
            f"; the broker on port {broker.port} runs from {other.data_dir}: "
            f"pass --data-dir {other.data_dir} (or leave --data-dir out)"
        )
    return line


def _start(args: argparse.Namespace) -> int:
    """Start the broker, or report that it already runs."""
    broker = _broker(args)
    if not broker.start():
        print(f"already running: bootstrap={broker.bootstrap} data_dir={broker.data_dir}")
    print(f"bootstrap={broker.bootstrap}")
    return 0


def _stop(args: argparse.Namespace) -> int:
    """Stop the broker if it runs; exit 1 when there was none to stop."""
    broker = _running_broker(args)
    if broker.stop():
        print(f"stopped: bootstrap={broker.bootstrap} data_dir={broker.data_dir}")
        return 0
    print(_not_running(broker))
    return 1


def _status(args: argparse.Namespace) -> int:
    """Print the running broker's coordinates; exit 1 when it is not running."""
    broker = _running_broker(args)
    status = broker.status()
    if status is None:
        print(_not_running(broker))
        return 1
    print(f"bootstrap={status.bootstrap}")
    print(f"pid={status.pid}")
    print(f"data_dir={status.data_dir}")
    return 0
