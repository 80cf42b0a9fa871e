"""Reload decisions against a model directory: when a version is loaded, refused, retried."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import orjson
import pytest

from stream.core.model_reload import ModelReloader
from stream.core.served_model import ServedModel


class FakeModel:
    """A predictor as the reloader and the served-model book see it."""

    def __init__(self, version: str) -> None:
        self.manifest = SimpleNamespace(version=version, labels=("a", "b"))
        self.closed = False

    def close(self) -> None:
        self.closed = True


def write_version(directory: Path, version: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "manifest.json").write_bytes(orjson.dumps({"version": version}))


class Harness:
    """A reloader over `path` whose loads and refusals are recorded."""

    def __init__(self, path: Path, serving: str, broken: set[str] | None = None) -> None:
        self.loads: list[Path] = []
        self.loaded: list[FakeModel] = []
        self.refused: list[str] = []
        self.broken = broken or set()

        def load(at: Path) -> FakeModel:
            self.loads.append(at)
            version = orjson.loads((at / "manifest.json").read_bytes())["version"]
            if version in self.broken:
                raise RuntimeError(f"model.json of {version} is corrupt\nmore detail")
            self.loaded.append(FakeModel(version))
            return self.loaded[-1]

        def check(manifest: object) -> None:
            if getattr(manifest, "version", "").startswith("misfit"):
                raise ValueError("window_length 100 does not match windows.length 315")

        self.reloader = ModelReloader(
            path,
            0.0,
            serving,
            load,
            check,
            on_refused=self.refused.append,  # type: ignore[arg-type]
        )


def test_a_new_version_is_loaded_once_and_handed_over(tmp_path: Path) -> None:
    write_version(tmp_path / "m", "v1")
    h = Harness(tmp_path / "m", serving="v1")
    h.reloader.check_now()
    assert h.loads == [] and h.reloader.take() is None  # the served version: nothing to do
    write_version(tmp_path / "m", "v2")
    h.reloader.check_now()
    h.reloader.check_now()
    taken = h.reloader.take()
    assert taken is not None and taken.manifest.version == "v2"
    assert len(h.loads) == 1 and h.refused == []
    assert h.reloader.take() is None


def test_a_symlink_flip_loads_from_the_resolved_directory(tmp_path: Path) -> None:
    write_version(tmp_path / "a", "v1")
    write_version(tmp_path / "b", "v2")
    link = tmp_path / "current"
    link.symlink_to(tmp_path / "a")
    h = Harness(link, serving="v1")
    flipped = tmp_path / "next"
    flipped.symlink_to(tmp_path / "b")
    flipped.replace(link)  # atomic, as the README says
    h.reloader.check_now()
    assert h.loads == [(tmp_path / "b").resolve()]


@pytest.mark.parametrize(
    ("version", "reason"),
    [("broken", "does not load: model.json of broken is corrupt"), ("misfit-1", "does not fit")],
)
def test_a_model_that_fails_is_refused_once_until_the_directory_changes(
    tmp_path: Path, version: str, reason: str
) -> None:
    write_version(tmp_path / "m", "v1")
    h = Harness(tmp_path / "m", serving="v1", broken={"broken"})
    write_version(tmp_path / "m", version)
    for _ in range(3):
        h.reloader.check_now()
    assert len(h.refused) == 1 and reason in h.refused[0] and "\n" not in h.refused[0]
    assert h.reloader.take() is None
    h.reloader.request_check()  # SIGHUP: try the same directory again
    h.reloader.check_now()
    assert len(h.refused) == 2
    write_version(tmp_path / "m", "v3")
    h.reloader.check_now()
    assert h.reloader.take().manifest.version == "v3"


def test_an_unreadable_manifest_is_refused_with_the_path(tmp_path: Path) -> None:
    (tmp_path / "m").mkdir()
    h = Harness(tmp_path / "m", serving="v1")
    h.reloader.check_now()
    assert len(h.refused) == 1 and "manifest.json has no readable version" in h.refused[0]
    assert h.loads == []


def test_a_loaded_model_nobody_took_is_closed_when_a_newer_one_arrives(tmp_path: Path) -> None:
    write_version(tmp_path / "m", "v1")
    h = Harness(tmp_path / "m", serving="v0")
    h.reloader.check_now()
    write_version(tmp_path / "m", "v2")
    h.reloader.check_now()
    assert [m.manifest.version for m in h.loaded] == ["v1", "v2"]
    assert h.loaded[0].closed and not h.loaded[1].closed
    assert h.reloader.take() is h.loaded[1]


def test_a_retired_model_is_closed_once_its_last_batch_is_back_and_never_if_not_owned() -> None:
    given, loaded, newer = FakeModel("v1"), FakeModel("v2"), FakeModel("v3")
    models = ServedModel(given, owned=False)
    models.submitted(given)
    models.swap(loaded)
    assert models.current is loaded and not given.closed
    models.submitted(loaded)
    models.returned(given)
    assert not given.closed  # the caller's model: retired, but its owner closes it
    models.swap(newer)
    assert not loaded.closed  # a batch of it is still at the predictor thread
    models.returned(loaded)
    assert loaded.closed and not newer.closed
    models.close()
    assert newer.closed
