"""What every benchmark shares: a broker, fresh topics, UWave-like records, the machine.

Records are built from the UWave test split (values as a glove would send them) and
pre-encoded once, so that filling a topic costs Kafka's time, not ours.
"""

from __future__ import annotations

import contextlib
import logging
import os
import platform
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np
import numpy.typing as npt
import orjson

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[1]
FALLBACK_MODEL = Path("/tmp/h4/m1")  # same shapes as the shipped model, until it exists
BOOTSTRAP_ENV = "SENSORSTREAM_BOOTSTRAP"
INTERVAL_MS = 10  # 100 Hz sensors
START_MS = 1_732_280_000_000


def model_dir() -> Path:
    """The shipped model, or a stand-in with the same shapes when it is not built yet."""
    shipped = REPO / "models" / "uwave"
    if (shipped / "manifest.json").is_file():
        return shipped
    if (FALLBACK_MODEL / "manifest.json").is_file():
        return FALLBACK_MODEL
    raise FileNotFoundError(f"no model at {shipped} (nor {FALLBACK_MODEL}); train or export one")


def uwave_test_file() -> Path:
    """UWaveGestureLibrary_TEST.ts in the folder timesnet.uwave.find_uwave finds."""
    from timesnet.uwave import UWAVE_TEST_FILE, find_uwave

    return find_uwave() / UWAVE_TEST_FILE


def uwave_series() -> npt.NDArray[np.float64]:
    """All UWave test cases end to end, at 4 decimals as a sensor sends them: [320 * 315, 3]."""
    from timesnet.ts_format import read_ts

    data = read_ts(uwave_test_file())
    x = np.asarray(data.x, dtype=np.float32)  # [N, L, C]
    return np.round(x.reshape(-1, x.shape[2]).astype(np.float64), 4)


@contextlib.contextmanager
def broker() -> Iterator[str]:
    """host:port of $SENSORSTREAM_BOOTSTRAP, else of a LocalKafka started on a free port."""
    external = os.environ.get(BOOTSTRAP_ENV)
    if external:
        yield external
        return
    from stream.kafka.local_broker import LocalKafka
    from stream.kafka.local_broker_lookup import free_port

    with tempfile.TemporaryDirectory(prefix="sensorstream-bench-") as data_dir:
        local = LocalKafka(port=free_port(), data_dir=data_dir)
        try:
            local.start()
            yield local.bootstrap
        finally:
            local.stop()


def new_topic(bootstrap: str, stem: str, partitions: int = 1) -> str:
    """Create a uniquely named topic and wait for its leaders."""
    from kafka import KafkaAdminClient

    name = f"bench-{stem}-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics(
            {name: {"num_partitions": partitions, "replication_factor": 1}},
            wait_for_metadata=True,
        )
    finally:
        admin.close()
    return name


@dataclass(frozen=True)
class Workload:
    """Pre-encoded records (key, value) of `devices` sensors streaming at 100 Hz."""

    name: str
    records: list[tuple[bytes, bytes]]
    samples: int
    devices: int

    @property
    def value_bytes(self) -> int:
        """Sum of the record values' sizes."""
        return sum(len(value) for _, value in self.records)

    @property
    def span_s(self) -> float:
        """Event time each device covers, in seconds."""
        return self.samples / self.devices * INTERVAL_MS / 1000.0


def _device_id(device: int) -> str:
    return f"dev-{device:06d}"


def chunk_workload(
    series: npt.NDArray[np.float32],
    devices: int,
    chunks_per_device: int,
    chunk: int = 100,
    start_ms: int = START_MS,
) -> Workload:
    """JSON chunk records of `chunk` samples, one per device per time step (round robin)."""
    bodies = chunk_bodies(series, chunk)

    def encode(device_id: str, ts: int, k: int) -> bytes:
        head = b'{"device_id":"%s","ts":%d,"interval_ms":%d,"values":' % (
            device_id.encode(),
            ts,
            INTERVAL_MS,
        )
        return head + bodies[k % len(bodies)]

    return _chunk_records(f"chunk{chunk}", devices, chunks_per_device, chunk, start_ms, encode)


def binary_chunk_workload(
    series: npt.NDArray[np.float32],
    devices: int,
    chunks_per_device: int,
    chunk: int = 100,
    start_ms: int = START_MS,
) -> Workload:
    """The chunk workload's samples as binary chunk records (stream.decode.binary_format)."""
    from stream.decode.binary_format import encode_chunk

    usable = len(series) // chunk * chunk
    blocks = np.asarray(series[:usable], dtype=np.float32).reshape(-1, chunk, series.shape[1])
    blocks = blocks[:2000]  # [K, chunk, C], the same chunks chunk_bodies encodes as JSON

    def encode(device_id: str, ts: int, k: int) -> bytes:
        return encode_chunk(device_id, ts, float(INTERVAL_MS), blocks[k % len(blocks)])

    return _chunk_records(f"binary{chunk}", devices, chunks_per_device, chunk, start_ms, encode)


def _chunk_records(
    name: str,
    devices: int,
    chunks_per_device: int,
    chunk: int,
    start_ms: int,
    encode: Callable[[str, int, int], bytes],
) -> Workload:
    """Chunk k of the series for each device in turn, each time step; encode(id, ts, k)."""
    records: list[tuple[bytes, bytes]] = []
    for step in range(chunks_per_device):
        ts = start_ms + step * chunk * INTERVAL_MS
        for device in range(devices):
            device_id = _device_id(device)
            records.append((device_id.encode(), encode(device_id, ts, step * devices + device)))
    return Workload(name, records, devices * chunks_per_device * chunk, devices)


def single_workload(
    series: npt.NDArray[np.float32],
    devices: int,
    samples_per_device: int,
    start_ms: int = START_MS,
) -> Workload:
    """Single-sample records, one per device per 10 ms step (round robin)."""
    rows = [orjson.dumps(row) for row in series[:50_000].tolist()]
    records: list[tuple[bytes, bytes]] = []
    for step in range(samples_per_device):
        ts = start_ms + step * INTERVAL_MS
        for device in range(devices):
            device_id = _device_id(device)
            value = b'{"device_id":"%s","ts":%d,"values":%s}' % (
                device_id.encode(),
                ts,
                rows[(step * devices + device) % len(rows)],
            )
            records.append((device_id.encode(), value))
    return Workload("single", records, devices * samples_per_device, devices)


def chunk_bodies(series: npt.NDArray[np.float32], chunk: int) -> list[bytes]:
    """Encoded `values` arrays of consecutive chunks of the series (float32 printed as JSON)."""
    usable = len(series) // chunk * chunk
    blocks = series[:usable].reshape(-1, chunk, series.shape[1])  # [K, chunk, C]
    return [orjson.dumps(block.tolist()) + b"}" for block in blocks[:2000]]


def fill_topic(bootstrap: str, topic: str, records: list[tuple[bytes, bytes]]) -> None:
    """Send every record (in order) and wait for all acknowledgements."""
    from kafka import KafkaProducer

    producer = KafkaProducer(
        bootstrap_servers=bootstrap,
        linger_ms=50,
        batch_size=1_048_576,
        acks=1,
        max_request_size=8_388_608,
    )
    try:
        for key, value in records:
            producer.send(topic, key=key, value=value)
        producer.flush(timeout=300)
    finally:
        producer.close()


def machine() -> dict[str, object]:
    """Cores, CPU model, memory, OS and load at the time of the run."""
    cpu = platform.processor() or "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_gib = 0.0
    with contextlib.suppress(OSError, ValueError, IndexError):
        first = Path("/proc/meminfo").read_text().splitlines()[0]
        mem_gib = int(first.split()[1]) / 2**20
    return {
        "cores": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": round(mem_gib, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "load_avg_1m_at_start": round(os.getloadavg()[0], 2),
    }


def versions() -> dict[str, str]:
    """Versions of the packages on the measured path."""
    found: dict[str, str] = {}
    for name in (
        "paddlepaddle",
        "paddlepaddle-gpu",
        "onnxruntime",
        "onnxruntime-gpu",
        "openvino",
        "kafka-python",
        "numpy",
        "orjson",
        "crc32c",
        "pydantic",
    ):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "absent"
    return found


def record_run(results: dict, prog: str, argv: list[str] | None, started: float) -> None:
    """Stamp a bench's results with the machine, the package versions and the command run."""
    results["machine"] = machine()
    results["versions"] = versions()
    results["run"] = {
        "command": " ".join([prog, *(sys.argv[1:] if argv is None else argv)]),
        "wall_s": time.monotonic() - started,
    }


def write_json(path: Path | None, results: dict) -> None:
    """Every figure of a bench run, indented, when --json named a file."""
    if path is not None:
        path.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
