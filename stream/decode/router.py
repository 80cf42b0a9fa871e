"""Decode and validate a poll's worth of input records into columnar samples + dead letters.

A poll may mix JSON records (stream/decode/json_records.py) and binary chunk records
(stream/decode/binary_records.py, magic ``SSB1``): each record is routed by its first
bytes, both halves decoded at once, and the results merged back into record order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import numpy.typing as npt

from stream.decode.binary_format import RecordLimits
from stream.decode.binary_records import BinaryChunkDecoder, JoinedValues
from stream.decode.json_records import JsonRecordDecoder
from stream.decode.polled import joined_values, values_and_keys
from stream.decode.types import DeadLetter, RawRecord, SampleBatch


class RecordDecoder:
    """Turns InputRecords into a SampleBatch of C-channel samples and a list of DeadLetters."""

    def __init__(self, channels: int, limits: RecordLimits) -> None:
        self.channels = channels
        self.limits = limits
        self._json = JsonRecordDecoder(channels, limits)
        self._binary = BinaryChunkDecoder(channels, limits)

    def decode(self, records: Sequence[RawRecord]) -> tuple[SampleBatch, list[DeadLetter]]:
        """Decode one poll; samples keep record order, dead letters are in record order too."""
        joined = joined_values(records)
        binary = joined.binary_mask()  # [R]
        if not binary.any():
            batch, dead = self._json.decode(records, *values_and_keys(records))
            return batch, [letter for _, letter in dead]
        if binary.all():
            runs = self._binary.decode(joined)
            everything = np.arange(len(records))
            letters = [DeadLetter.of(records[k], reason, text) for k, reason, text in runs.rejected]
            return SampleBatch.from_runs(runs, everything), letters
        return self._decode_mixed(records, joined, binary)

    def _decode_mixed(
        self, records: Sequence[RawRecord], joined: JoinedValues, binary: npt.NDArray[np.bool_]
    ) -> tuple[SampleBatch, list[DeadLetter]]:
        """A poll holding both formats: each half decoded at once, merged back in record order."""
        binary_at, json_at = np.flatnonzero(binary), np.flatnonzero(~binary)
        picked = binary_at.tolist()
        runs = self._binary.decode(joined.take(binary_at))
        values, keys = values_and_keys(records)
        json_list = json_at.tolist()
        json_batch, json_dead = self._json.decode(
            [records[k] for k in json_list],
            [values[k] for k in json_list],
            [keys[k] for k in json_list],
        )
        json_batch = replace(
            json_batch, record_positions=json_at[json_batch.record_positions].astype(np.int32)
        )
        dead = [(json_list[k], letter) for k, letter in json_dead]
        dead += [
            (picked[k], DeadLetter.of(records[picked[k]], reason, text))
            for k, reason, text in runs.rejected
        ]
        dead.sort(key=lambda item: item[0])
        batch = SampleBatch.merge(json_batch, SampleBatch.from_runs(runs, binary_at))
        return batch, [letter for _, letter in dead]
