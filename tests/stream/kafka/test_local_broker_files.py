"""The broker's jars: copied with Maven once, reused from the cache, a clear hint without Maven."""

from __future__ import annotations

import pytest

from stream.errors import SensorstreamError
from stream.kafka.local_broker_files import ensure_jars


def test_uncached_jars_without_maven_are_reported_with_an_install_hint(tmp_path, monkeypatch):
    monkeypatch.setenv("SENSORSTREAM_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))

    hint = r"not cached in .* `mvn` is not on PATH: install Maven"
    with pytest.raises(SensorstreamError, match=hint):
        ensure_jars()


@pytest.mark.integration
def test_cached_jars_are_reused_without_calling_maven(monkeypatch):
    lib = ensure_jars()
    monkeypatch.setenv("PATH", "/nonexistent")

    assert ensure_jars() == lib
    assert any(jar.name.startswith("kafka_2.13-") for jar in lib.glob("*.jar"))
    assert any(jar.name.startswith("slf4j-api-2.") for jar in lib.glob("*.jar"))
