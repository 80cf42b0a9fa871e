"""A real single-node Apache Kafka 4.x broker (KRaft, broker+controller) for development and tests.

The broker's jars come from Maven Central through ``deploy/kafka/pom.xml`` and are
copied once into ``~/.cache/sensorstream/kafka/<version>/lib``. Each broker lives in
its own data directory, which holds everything it needs to be restarted, stopped or
inspected by a later process: ``server.properties``, ``log4j2.properties``, the pid
file, the log file, the cluster id, the controller port and the topic data.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from stream.errors import SensorstreamError

logger = logging.getLogger(__name__)

DEFAULT_PORT = 9092
LOG_TAIL_LINES = 15
JAVA_HINT = "install Java 17+, e.g. apt-get install openjdk-17-jre-headless"
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


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int) -> bool:
    """Whether a listener could bind 127.0.0.1:port now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def default_data_dir(port: int) -> Path:
    """The data dir a broker on this port uses unless told otherwise."""
    return cache_root() / "kafka-data" / str(port)


def registry_dir() -> Path:
    """Where each started broker records its data dir by port, so a later CLI call finds it."""
    return cache_root() / "kafka-brokers"


def find_broker(port: int) -> LocalKafka | None:
    """The running local broker recorded for 127.0.0.1:port, whatever its data dir, or None."""
    try:
        recorded = (registry_dir() / str(port)).read_text().strip()
    except (OSError, UnicodeDecodeError):
        recorded = ""
    candidates = [Path(recorded)] if recorded else []
    candidates.append(default_data_dir(port))
    listener = listener_data_dir(port)
    if listener is not None:
        candidates.append(listener)
    for data_dir in candidates:
        broker = LocalKafka(port=port, data_dir=data_dir)
        if broker._live_pid() is not None and broker._serves_port():
            return broker
    return None


def listener_data_dir(port: int) -> Path | None:
    """The data dir of the local broker listening on 127.0.0.1:port, read from /proc (Linux).

    Finds brokers the registry does not know: started before it existed, or under
    another cache dir.
    """
    inode = _listening_inode(port)
    if inode is None:
        return None
    target = f"socket:[{inode}]"
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if not any(os.readlink(fd) == target for fd in (proc / "fd").iterdir()):
                continue
            args = (proc / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue  # gone, or not ours to read
        if "kafka.Kafka" in args[:-1]:
            return Path(args[args.index("kafka.Kafka") + 1]).parent
        return None
    return None


def _listening_inode(port: int) -> str | None:
    """The socket inode listening on 127.0.0.1:port per /proc/net/tcp{,6}, or None."""
    # The JVM binds IPv6 sockets, so its 127.0.0.1 listener shows as ::ffff:127.0.0.1.
    local = {f"0100007F:{port:04X}", f"0000000000000000FFFF00000100007F:{port:04X}"}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 9 and fields[1] in local and fields[3] == "0A":  # 0A: LISTEN
                return fields[9]
    return None


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


@dataclass(frozen=True)
class BrokerStatus:
    """What a running local broker looks like from outside."""

    bootstrap: str
    pid: int
    data_dir: Path


class LocalKafka:
    """One local Kafka broker on 127.0.0.1:port whose state lives in data_dir."""

    def __init__(
        self,
        port: int = DEFAULT_PORT,
        data_dir: Path | str | None = None,
        start_timeout_s: float = 90.0,
        stop_timeout_s: float = 30.0,
        heap_max_mb: int = 512,
        sasl_ssl: SaslSslListener | None = None,
    ) -> None:
        self.port = port
        self.sasl_ssl = sasl_ssl
        chosen = Path(data_dir).expanduser() if data_dir else default_data_dir(port)
        self.data_dir = chosen.absolute()
        self.start_timeout_s = start_timeout_s
        self.stop_timeout_s = stop_timeout_s
        self.heap_max_mb = heap_max_mb
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        """host:port for clients."""
        return f"127.0.0.1:{self.port}"

    @property
    def pid_file(self) -> Path:
        """The file holding the broker's pid while it runs."""
        return self.data_dir / "broker.pid"

    @property
    def log_file(self) -> Path:
        """The broker's stdout/stderr (log4j2 console appender)."""
        return self.data_dir / "broker.log"

    def status(self) -> BrokerStatus | None:
        """The running broker, or None if it is not running and answering."""
        pid = self._live_pid()
        if pid is None or not self._answers():
            return None
        return BrokerStatus(self.bootstrap, pid, self.data_dir)

    def start(self) -> bool:
        """Start the broker and wait until it answers; False if it was already running."""
        if self._already_running():
            return False
        java = shutil.which("java")
        if java is None:
            raise SensorstreamError(f"no `java` on PATH: {JAVA_HINT}")
        if not port_is_free(self.port):
            raise SensorstreamError(self._port_taken_message())
        lib = ensure_jars()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        properties = self._write_config()
        self._format_storage(java, lib, properties)
        self._launch(java, lib, properties)
        self._wait_ready()
        return True

    def stop(self) -> bool:
        """SIGTERM the broker, SIGKILL it after stop_timeout_s; False if it was not running."""
        pid = self._live_pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        logger.info("stopping Kafka pid=%d bootstrap=%s", pid, self.bootstrap)
        os.kill(pid, signal.SIGTERM)
        if not self._wait_exit(pid, self.stop_timeout_s):
            logger.warning(
                "Kafka did not stop in time pid=%d timeout_s=%.0f: killing it",
                pid,
                self.stop_timeout_s,
            )
            os.kill(pid, signal.SIGKILL)
            self._wait_exit(pid, 10.0)
        self.pid_file.unlink(missing_ok=True)
        self._process = None
        self._forget()
        return True

    def _port_taken_message(self) -> str:
        """Why start cannot listen: another local broker (named) or some other process."""
        other = find_broker(self.port)
        if other is not None:
            return (
                f"port {self.port} is taken by the local broker from {other.data_dir}: stop it "
                f"with `sensorstream kafka stop --port {self.port}` or pick another port "
                "with --port N"
            )
        return (
            f"port {self.port} is taken by another process: stop it or pick another "
            "port with --port N"
        )

    def _serves_port(self) -> bool:
        """Whether this data dir's server.properties puts its client listener on self.port."""
        try:
            text = (self.data_dir / "server.properties").read_text()
        except OSError:
            return False
        return f"PLAINTEXT://127.0.0.1:{self.port}," in text

    def _register(self) -> None:
        """Record this data dir under the port for `kafka status|stop --port` without --data-dir."""
        entry = registry_dir() / str(self.port)
        try:
            entry.parent.mkdir(parents=True, exist_ok=True)
            entry.write_text(f"{self.data_dir}\n")
        except OSError as exc:
            # Only the lookup by port suffers: --data-dir still finds the broker.
            logger.warning("cannot record the broker in %s (%s)", entry, exc)

    def _forget(self) -> None:
        """Drop the port's registry entry if it still names this data dir."""
        entry = registry_dir() / str(self.port)
        try:
            if entry.read_text().strip() == str(self.data_dir):
                entry.unlink()
        except OSError:
            pass

    def _already_running(self) -> bool:
        """A live broker from this data dir: True if it answers; wait for it if still starting."""
        pid = self._live_pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        if not self._answers():
            self._wait_ready()
        logger.info("Kafka already running pid=%d bootstrap=%s", pid, self.bootstrap)
        return True

    def _live_pid(self) -> int | None:
        """The pid from the pid file if that process is alive and is this data dir's broker."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        if not process_alive(pid, self._process):
            return None
        if self._process is not None and self._process.pid == pid:
            return pid
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        except OSError:
            cmdline = ""
        if not cmdline:
            return pid  # no /proc, or a process mid-exec: trust the pid file
        # A recycled pid belongs to some other program: the pid file is stale.
        return pid if str(self.data_dir / "server.properties") in cmdline else None

    def _remembered(self, name: str, make: Callable[[], str]) -> str:
        """A value kept in data_dir/name, made once, so restarts reuse it."""
        path = self.data_dir / name
        if not path.is_file():
            path.write_text(make() + "\n")
        return path.read_text().strip()

    def _controller_port(self) -> int:
        """The controller's port, chosen once per data dir so restarts find the same quorum."""
        port = int(self._remembered("controller.port", lambda: str(free_port())))
        if not port_is_free(port):
            raise SensorstreamError(
                f"controller port {port} (remembered in {self.data_dir / 'controller.port'}) is "
                "taken by another process: stop it, or delete that file to pick a new one"
            )
        return port

    def _cluster_id(self) -> str:
        """The cluster id (22-char base64 UUID), created once per data dir."""
        return self._remembered("cluster.id", _new_cluster_id)

    def _write_config(self) -> Path:
        """Write server.properties and log4j2.properties; return the server.properties path."""
        settings = server_settings(self.port, self._controller_port(), self.data_dir, self.sasl_ssl)
        path = self.data_dir / "server.properties"
        path.write_text("".join(f"{key}={value}\n" for key, value in settings.items()))
        (self.data_dir / "log4j2.properties").write_text(LOG4J2_PROPERTIES)
        return path

    def _format_storage(self, java: str, lib: Path, properties: Path) -> None:
        """Format the KRaft log dir once (a restart finds meta.properties and skips this)."""
        if (self.data_dir / "logs" / "meta.properties").is_file():
            return
        result = subprocess.run(
            [
                java,
                "-Xmx256m",
                *self._log4j_args(),
                "-cp",
                f"{lib}/*",
                "kafka.tools.StorageTool",
                "format",
                "-t",
                self._cluster_id(),
                "-c",
                str(properties),
                "--ignore-formatted",
                *(self.sasl_ssl.format_args() if self.sasl_ssl else []),
            ],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        if result.returncode != 0:
            raise SensorstreamError(
                f"formatting the Kafka storage in {self.data_dir} failed "
                f"(exit {result.returncode}); delete that dir to start clean\n"
                f"{tail_lines(result.stdout + result.stderr)}"
            )

    def _log4j_args(self) -> list[str]:
        """JVM flags pointing log4j2 at this data dir's config."""
        return [f"-Dlog4j2.configurationFile={self.data_dir / 'log4j2.properties'}"]

    def _launch(self, java: str, lib: Path, properties: Path) -> None:
        """Start the JVM in its own session (it outlives the CLI) and write the pid file."""
        command = [
            java,
            f"-Xmx{self.heap_max_mb}m",
            "-Xms256m",
            *self._log4j_args(),
            "-cp",
            f"{lib}/*",
            "kafka.Kafka",
            str(properties),
        ]
        with open(self.log_file, "ab") as log:
            self._process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.data_dir,
                start_new_session=True,
            )
        self.pid_file.write_text(f"{self._process.pid}\n")
        self._register()
        logger.info(
            "started Kafka pid=%d bootstrap=%s data_dir=%s",
            self._process.pid,
            self.bootstrap,
            self.data_dir,
        )

    def _wait_ready(self) -> None:
        """Block until the broker lists topics; raise with the log tail if it dies or stalls."""
        deadline_s = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline_s:
            pid = self._live_pid()
            if pid is None:
                self.pid_file.unlink(missing_ok=True)
                self._forget()
                raise SensorstreamError(
                    f"the Kafka broker exited during start; its log {self.log_file} ends "
                    f"with:\n{self._log_tail()}"
                )
            if self._answers():
                return
            time.sleep(0.25)
        raise SensorstreamError(
            f"the Kafka broker did not answer on {self.bootstrap} within "
            f"{self.start_timeout_s:.0f} s; stop it with `sensorstream kafka stop`; its log "
            f"{self.log_file} ends with:\n{self._log_tail()}"
        )

    def _answers(self) -> bool:
        """Whether a client can list topics (a bare TCP connect succeeds too early)."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1.0):
                pass
        except OSError:
            return False
        from kafka import KafkaAdminClient
        from kafka.errors import KafkaError

        try:
            admin = KafkaAdminClient(
                bootstrap_servers=self.bootstrap, request_timeout_ms=5000, bootstrap_timeout_ms=5000
            )
        except KafkaError:
            return False
        try:
            admin.list_topics()
            return True
        except KafkaError:
            return False
        finally:
            admin.close()

    def _wait_exit(self, pid: int, timeout_s: float) -> bool:
        """Wait for the process to go away; True if it did within timeout_s."""
        deadline_s = time.monotonic() + timeout_s
        while time.monotonic() < deadline_s:
            if not process_alive(pid, self._process):
                return True
            time.sleep(0.1)
        return not process_alive(pid, self._process)

    def _log_tail(self) -> str:
        """The last lines of the broker's log file."""
        try:
            return tail_lines(self.log_file.read_text(errors="replace"))
        except FileNotFoundError:
            return "(no log file)"


def _new_cluster_id() -> str:
    """A 22-char base64 UUID that does not start with "-" (StorageTool would read it as a flag)."""
    while True:
        candidate = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not candidate.startswith("-"):
            return candidate


def process_alive(pid: int, own: subprocess.Popen[bytes] | None) -> bool:
    """Whether pid runs; a zombie counts as gone (and is reaped if it is our child)."""
    if own is not None and own.pid == pid:
        return own.poll() is None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        status = dict(
            line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
        )
    except (OSError, ValueError):
        return True
    # A JVM's main thread turns zombie while its other threads still shut down (and
    # still hold the ports): the process is gone only when the zombie is alone.
    zombie = status.get("State", "").strip().startswith("Z")
    if not zombie or status.get("Threads", "1").strip() != "1":
        return True
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass  # someone else's child: its parent reaps it
    return False
