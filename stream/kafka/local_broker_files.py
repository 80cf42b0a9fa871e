"""What a local broker runs from: its jars and the config files written into its data dir.

The jars come from Maven Central through ``deploy/kafka/pom.xml`` and are copied
once into ``~/.cache/sensorstream/kafka/<version>/lib`` (again when the pom
changes). The data dir gets ``server.properties`` (one KRaft node, an optional
SASL_SSL listener) and ``log4j2.properties``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from stream.errors import SensorstreamError

logger = logging.getLogger(__name__)

LOG_TAIL_LINES = 15
MAVEN_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.7.1:copy-dependencies"
# The copied lib dir records which pom produced it, so editing the pom re-copies.
POM_STAMP = ".pom-sha256"

LOG4J2_PROPERTIES = """\
# Written by sensorstream: warnings from everything, startup/shutdown from the server.
status = warn
# The console appender flushes every line, and Kafka's own hook already logs the shutdown.
shutdownHook = disable
appender.console.type = Console
appender.console.name = STDOUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.console.ref = STDOUT
logger.raftserver.name = kafka.server.KafkaRaftServer
logger.raftserver.level = INFO
"""


def cache_root() -> Path:
    """Where sensorstream caches downloads: $SENSORSTREAM_CACHE_DIR, else ~/.cache/sensorstream."""
    override = os.environ.get("SENSORSTREAM_CACHE_DIR")
    if override:
        return Path(override).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "sensorstream"


def pom_path() -> Path:
    """The broker's pom in the source tree next to the (editable-installed) stream package."""
    path = Path(__file__).resolve().parents[2] / "deploy" / "kafka" / "pom.xml"
    if not path.is_file():
        raise SensorstreamError(
            f"{path} not found: the local broker needs the sensorstream source tree "
            "(install it with `pip install -e .` from a git checkout)"
        )
    return path


def kafka_version(pom: Path) -> str:
    """The Kafka version the pom asks for (its kafka.version property)."""
    match = re.search(r"<kafka\.version>\s*([^<\s]+)\s*</kafka\.version>", pom.read_text())
    if not match:
        raise SensorstreamError(f"{pom} has no <kafka.version> property: restore it from git")
    return match.group(1)


def ensure_jars(cache_dir: Path | None = None) -> Path:
    """The directory of the broker's runtime jars, copied from Maven Central on first use."""
    pom = pom_path()
    root = cache_dir if cache_dir is not None else cache_root()
    lib = root / "kafka" / kafka_version(pom) / "lib"
    pom_sha = hashlib.sha256(pom.read_bytes()).hexdigest()
    stamp = lib / POM_STAMP
    if stamp.is_file() and stamp.read_text().strip() == pom_sha:
        return lib
    mvn = shutil.which("mvn")
    if mvn is None:
        raise SensorstreamError(
            f"the Kafka jars are not cached in {lib} and `mvn` is not on PATH: "
            "install Maven (e.g. apt-get install maven) and run again"
        )
    lib.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="lib.partial.", dir=lib.parent))
    logger.info("copying Kafka jars pom=%s into=%s", pom, lib)
    started_s = time.monotonic()
    result = subprocess.run(
        [
            mvn,
            "-B",
            "-q",
            "-f",
            str(pom),
            MAVEN_PLUGIN,
            "-DincludeScope=runtime",
            f"-DoutputDirectory={staging}",
        ],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        raise SensorstreamError(
            f"mvn could not fetch the Kafka jars (exit {result.returncode}); check network "
            f"access to Maven Central\n{tail_lines(result.stdout + result.stderr)}"
        )
    (staging / POM_STAMP).write_text(pom_sha + "\n")
    _install_dir(staging, lib)
    logger.info("copied Kafka jars lib=%s elapsed_s=%.1f", lib, time.monotonic() - started_s)
    return lib


def _install_dir(staging: Path, target: Path) -> None:
    """Move a complete staging dir into place; a concurrent copier that got there first wins."""
    if target.exists():
        stale = target.with_name(f"{target.name}.old.{os.getpid()}")
        target.rename(stale)
        shutil.rmtree(stale, ignore_errors=True)
    try:
        staging.rename(target)
    except OSError:
        # Another process renamed its own complete copy in between: use that one.
        shutil.rmtree(staging, ignore_errors=True)
        if not (target / POM_STAMP).is_file():
            raise


def tail_lines(text: str, lines: int = LOG_TAIL_LINES) -> str:
    """The last lines of some output, for error messages."""
    return "\n".join(text.rstrip().splitlines()[-lines:])


@dataclass(frozen=True)
class SaslSslListener:
    """An extra SASL_SSL listener (SCRAM) for trying secure clients against the local broker.

    `keystore_pem` holds the broker's unencrypted PKCS#8 key and its certificate
    chain; `scram_users` are (name, password) pairs created for both SCRAM mechanisms
    when the storage is formatted (KRaft keeps them in the cluster metadata), so
    they apply to a fresh data dir only.
    """

    port: int
    keystore_pem: Path
    scram_users: tuple[tuple[str, str], ...]

    @property
    def bootstrap(self) -> str:
        """host:port of the SASL_SSL listener."""
        return f"127.0.0.1:{self.port}"

    def server_settings(self) -> dict[str, str]:
        """server.properties entries for this listener (beside the PLAINTEXT one)."""
        jaas = "org.apache.kafka.common.security.scram.ScramLoginModule required;"
        prefix = "listener.name.sasl_ssl."
        return {
            f"{prefix}sasl.enabled.mechanisms": ",".join(SCRAM_MECHANISMS),
            **{f"{prefix}{m.lower()}.sasl.jaas.config": jaas for m in SCRAM_MECHANISMS},
            f"{prefix}ssl.keystore.type": "PEM",
            f"{prefix}ssl.keystore.location": str(self.keystore_pem),
        }

    def format_args(self) -> list[str]:
        """StorageTool arguments creating the SCRAM credentials."""
        args: list[str] = []
        for name, password in self.scram_users:
            for mechanism in SCRAM_MECHANISMS:
                args += ["--add-scram", f"{mechanism}=[name={name},password={password}]"]
        return args


SCRAM_MECHANISMS = ("SCRAM-SHA-256", "SCRAM-SHA-512")


def server_settings(
    port: int, controller_port: int, data_dir: Path, sasl_ssl: SaslSslListener | None
) -> dict[str, str]:
    """server.properties of a one-node KRaft broker: clients on `port`, state in data_dir."""
    settings = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@127.0.0.1:{controller_port}",
        "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": str(data_dir / "logs"),
        "num.partitions": "1",
        "auto.create.topics.enable": "true",
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        # One member per group in tests: waiting for more only slows every join.
        "group.initial.rebalance.delay.ms": "0",
    }
    if sasl_ssl is not None:
        extra = f"SASL_SSL://127.0.0.1:{sasl_ssl.port}"
        settings["listeners"] += f",{extra}"
        settings["advertised.listeners"] += f",{extra}"
        settings["listener.security.protocol.map"] += ",SASL_SSL:SASL_SSL"
        settings.update(sasl_ssl.server_settings())
    return settings
