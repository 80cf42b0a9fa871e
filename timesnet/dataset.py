"""The dataset both readers return, and what they share: pad/crop, label ids, file bytes.

A :class:`Dataset` holds float32 windows ``[N, L, C]``; :mod:`timesnet.ts_format`
reads UEA/sktime ``.ts`` files into one, :mod:`timesnet.paddlex_csv` PaddleX CSV
files, and :func:`timesnet.readers.read_dataset` picks the reader by suffix.

Length rule (cases longer or shorter than the model's window length ``L``):

* **crop** keeps the LAST ``L`` samples. The worker classifies the most recent
  ``L`` samples of a device, so training on the end of a long series matches what
  the model sees in production.
* **pad** repeats the FIRST sample at the front until the case is ``L`` long, so
  the end of every case stays aligned with the end of the window (as for crop).
  Repeating the edge value looks like a sensor at rest before the motion; zeros
  would instead put a step into the series whose spectrum leaks into every FFT
  period TimesNet picks.

``lengths`` keeps each case's original length.

Labels: pass the model's label list as ``labels`` so a test file maps to the same
ids as training. Without it the order is that of the ``@classLabel true ...`` header,
else the sorted unique labels (numerically when all look like numbers). A numeric
label that is not in the list verbatim matches a numerically equal one (``1`` ->
``1.0``), because CSV exports often rewrite ``1.0`` as ``1``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from timesnet.errors import DataFormatError, ModelError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Dataset:
    """Cases as float32 windows [N, L, C], with int64 label ids [N] (or None) and provenance."""

    x: np.ndarray  # float32 [N, L, C]
    y: np.ndarray | None  # int64 [N], ids into labels
    labels: tuple[str, ...]  # class names in id order
    source_sha256: str  # sha256 of the file bytes
    lengths: np.ndarray  # int64 [N], original lengths before pad/crop

    @property
    def window_length(self) -> int:
        """L, the number of samples per case after pad/crop."""
        return int(self.x.shape[1])

    @property
    def n_channels(self) -> int:
        """C, the number of channels per sample."""
        return int(self.x.shape[2])

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def subset(self, indices: np.ndarray | Sequence[int]) -> Dataset:
        """The cases at ``indices`` (in that order), same labels and provenance."""
        idx = np.asarray(indices, dtype=np.int64)
        y = None if self.y is None else self.y[idx]
        return replace(self, x=self.x[idx], y=y, lengths=self.lengths[idx])


def split_train_validation(ds: Dataset, fraction: float, seed: int) -> tuple[Dataset, Dataset]:
    """Split into (train, validation), stratified by class and deterministic for ``seed``.

    Each class gives round(fraction * count) cases to validation, at least one when
    fraction > 0, and always leaves at least one in train. Both parts keep file order.
    """
    if ds.y is None:
        raise ModelError("cannot split a dataset without class labels; use a labelled file")
    if not 0.0 <= fraction < 1.0:
        raise ModelError(f"validation fraction must be in [0, 1), got {fraction}")
    rng = np.random.default_rng(seed)
    val: list[np.ndarray] = []
    for class_id in range(len(ds.labels)):
        members = np.flatnonzero(ds.y == class_id)
        if members.size == 0:
            continue
        n_val = math.floor(fraction * members.size + 0.5)
        if fraction > 0.0:
            n_val = max(n_val, 1)
        n_val = min(n_val, members.size - 1)
        val.append(rng.permutation(members)[:n_val])
    val_idx = np.sort(np.concatenate(val)) if val else np.zeros(0, dtype=np.int64)
    train_mask = np.ones(len(ds), dtype=bool)
    train_mask[val_idx] = False
    return ds.subset(np.flatnonzero(train_mask)), ds.subset(val_idx)


# --------------------------------------------------------------------------- shared by the readers


def fit_length(series: Sequence[np.ndarray], length: int) -> np.ndarray:
    """Stack cases [T_i, C] into [N, length, C]: crop keeps the last, pad repeats the first."""
    if length <= 0:
        raise ModelError(f"window length must be positive, got {length}")
    n_channels = series[0].shape[1] if series else 0
    out = np.empty((len(series), length, n_channels), dtype=np.float32)  # [N, L, C]
    for i, case in enumerate(series):
        t = case.shape[0]
        if t >= length:
            out[i] = case[t - length :]
        else:
            out[i, : length - t] = case[0]
            out[i, length - t :] = case
    return out


def _sort_labels(unique: set[str]) -> tuple[str, ...]:
    """Sorted labels, numerically when every label parses as a number."""
    try:
        return tuple(sorted(unique, key=lambda s: (float(s), s)))
    except ValueError:
        return tuple(sorted(unique))


def _numeric_aliases(vocab: Sequence[str]) -> dict[float, int]:
    """float value -> id for numeric-looking labels, so '1' finds '1.0'."""
    aliases: dict[float, int] = {}
    for i, label in enumerate(vocab):
        try:
            aliases.setdefault(float(label), i)
        except ValueError:
            continue
    return aliases


def label_ids(
    raw: Sequence[str],
    line_numbers: Sequence[int],
    name: str,
    given: Sequence[str] | None,
    declared: tuple[str, ...] | None,
) -> tuple[np.ndarray, tuple[str, ...]]:
    """Map raw label strings to ids [N] in the vocabulary (given > declared > sorted unique)."""
    if declared is not None:
        declared_set = set(declared)
        for label, line in zip(raw, line_numbers, strict=True):
            if label not in declared_set:
                raise DataFormatError(
                    f"{name}: line {line}: class label {label!r} is not declared in "
                    f"@classLabel ({' '.join(declared)}); add it to the header or fix the line"
                )
    if given is not None:
        vocab = tuple(str(label) for label in given)
    else:
        vocab = declared if declared else _sort_labels(set(raw))
    index = {label: i for i, label in enumerate(vocab)}
    aliases = _numeric_aliases(vocab)
    ids = np.empty(len(raw), dtype=np.int64)
    for k, (label, line) in enumerate(zip(raw, line_numbers, strict=True)):
        class_id = index.get(label)
        if class_id is None:
            class_id = _numeric_alias(label, aliases)
        if class_id is None:
            raise DataFormatError(
                f"{name}: line {line}: class label {label!r} is not one of the model's labels "
                f"({', '.join(vocab)}); this file does not belong to this model"
            )
        ids[k] = class_id
    return ids, vocab


def _numeric_alias(label: str, aliases: dict[float, int]) -> int | None:
    """The id of a numerically equal label, or None."""
    try:
        return aliases.get(float(label))
    except ValueError:
        return None


def file_bytes(path: str | Path) -> bytes:
    """The bytes of a data file, with a clear error when it cannot be read."""
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise DataFormatError(f"{path}: cannot read data file: {exc.strerror or exc}") from exc


def decode_text(raw: bytes, name: str) -> str:
    """UTF-8 text (a BOM is dropped), or an error naming the file."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataFormatError(
            f"{name}: not UTF-8 text (byte {exc.start}); save it as UTF-8"
        ) from exc


def build_dataset(
    name: str,
    series: list[np.ndarray],
    length: int | None,
    y: np.ndarray | None,
    vocab: tuple[str, ...],
    digest: str,
) -> Dataset:
    """Pad/crop the cases [T_i, C] of file `name` and build its Dataset (logged)."""
    lengths = np.array([case.shape[0] for case in series], dtype=np.int64)
    target = int(lengths.max()) if length is None else int(length)
    x = fit_length(series, target)
    logger.info(
        "read dataset source=%s cases=%d length=%d channels=%d classes=%d",
        name,
        x.shape[0],
        target,
        x.shape[2],
        len(vocab),
    )
    return Dataset(x=x, y=y, labels=vocab, source_sha256=digest, lengths=lengths)
