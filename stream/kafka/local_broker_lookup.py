"""Finding a local broker from another process: ports, the per-port registry, /proc.

A later CLI call (`sensorstream kafka status|stop --port N`) finds a broker by the
data dir it recorded under its port, by the default data dir for the port, or by
the process listening on the port; a pid counts only while its process runs.
"""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

from stream.kafka.local_broker_files import cache_root


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
