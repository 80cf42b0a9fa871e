"""A real single-node Apache Kafka 4.x broker (KRaft, broker+controller) for development and tests.

Each broker lives in its own data directory, which holds everything it needs to be
restarted, stopped or inspected by a later process: ``server.properties``,
``log4j2.properties``, the pid file, the log file, the cluster id, the controller
port and the topic data. The jars and config files are stream/kafka/local_broker_files.py;
finding a broker from another process is stream/kafka/local_broker_lookup.py.
"""

from __future__ import annotations

import base64
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from stream.errors import SensorstreamError
from stream.kafka.local_broker_files import (
    LOG4J2_PROPERTIES,
    SaslSslListener,
    ensure_jars,
    server_settings,
    tail_lines,
)
from stream.kafka.local_broker_lookup import (
    default_data_dir,
    free_port,
    listener_data_dir,
    port_is_free,
    process_alive,
    registry_dir,
)

logger = logging.getLogger(__name__)

DEFAULT_PORT = 9092
JAVA_HINT = "install Java 17+, e.g. apt-get install openjdk-17-jre-headless"


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
