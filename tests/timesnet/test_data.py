"""The .ts and PaddleX CSV readers, the pad/crop rule, label ids and the train/validation split."""

from __future__ import annotations

import csv
import hashlib
import time
from pathlib import Path

import numpy as np
import pytest

from timesnet.dataset import Dataset, fit_length, split_train_validation
from timesnet.errors import DataFormatError, ModelError
from timesnet.paddlex_csv import read_paddlex_csv
from timesnet.readers import read_dataset
from timesnet.ts_format import read_ts
from timesnet.uwave import UWAVE_TEST_FILE, UWAVE_TRAIN_FILE

TRAIN_SHA256 = "e1d656037ceb880fe3d4ef7f83f2ee38459897ebaaada93527a17a86823bc92d"
TEST_SHA256 = "734b30171297cc4c209485020466d83dabd2b7ecf76edc10957354f2557d0964"
UWAVE_LABELS = tuple(f"{k}.0" for k in range(1, 9))


def ts_text(
    data: list[str],
    *,
    dimensions: int | None = 2,
    class_label: str = "true a b",
    missing: str = "false",
    equal_length: str = "false",
    series_length: int | None = None,
) -> str:
    """A small .ts file: 6 header lines (comment + 5 @ lines, optional ones appended) then @data."""
    head = [
        "# crafted for a test",
        "@problemName Crafted",
        "@timeStamps false",
        f"@missing {missing}",
        f"@equalLength {equal_length}",
        f"@classLabel {class_label}",
    ]
    if dimensions is not None:
        head.append(f"@dimensions {dimensions}")
    if series_length is not None:
        head.append(f"@seriesLength {series_length}")
    return "\n".join([*head, "@data", *data]) + "\n"


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# --------------------------------------------------------------------------- real UWave files


@pytest.fixture(scope="module")
def train_file(uwave_dir: Path) -> Path:
    return uwave_dir / UWAVE_TRAIN_FILE


@pytest.fixture(scope="module")
def uwave_train(train_file: Path) -> Dataset:
    return read_ts(train_file)


def test_uwave_train_has_120_cases_of_315_by_3_with_15_per_class(uwave_train: Dataset) -> None:
    assert uwave_train.x.shape == (120, 315, 3)
    assert uwave_train.x.dtype == np.float32
    assert uwave_train.y is not None and uwave_train.y.dtype == np.int64
    assert uwave_train.labels == UWAVE_LABELS
    assert np.bincount(uwave_train.y, minlength=8).tolist() == [15] * 8
    assert uwave_train.source_sha256 == TRAIN_SHA256
    assert uwave_train.lengths.tolist() == [315] * 120
    assert (uwave_train.window_length, uwave_train.n_channels, len(uwave_train)) == (315, 3, 120)


def test_uwave_first_case_matches_the_file_text(uwave_train: Dataset, train_file: Path) -> None:
    first_line = train_file.read_text().split("@data\n", 1)[1].split("\n", 1)[0]
    channels = first_line.split(":")
    expected = np.array([c.split(",") for c in channels[:3]], dtype=np.float32).T  # [L, C]
    np.testing.assert_array_equal(uwave_train.x[0], expected)
    assert uwave_train.labels[uwave_train.y[0]] == channels[3]


def test_uwave_test_file_reads_in_well_under_a_second_with_train_label_ids(
    uwave_train: Dataset, uwave_dir: Path
) -> None:
    test_file = uwave_dir / UWAVE_TEST_FILE
    start = time.perf_counter()
    test = read_ts(test_file, labels=uwave_train.labels)
    elapsed_s = time.perf_counter() - start
    assert test.x.shape == (320, 315, 3)
    assert test.labels == UWAVE_LABELS
    assert np.bincount(test.y, minlength=8).tolist() == [40] * 8
    assert test.source_sha256 == TEST_SHA256 == hashlib.sha256(test_file.read_bytes()).hexdigest()
    # ~0.16 s measured; the bound leaves room for a busy shared 2-core machine.
    assert elapsed_s < 1.0


def test_read_dataset_dispatches_on_suffix_and_rejects_others(
    train_file: Path, tmp_path: Path
) -> None:
    assert read_dataset(train_file, length=100).x.shape == (120, 100, 3)
    with pytest.raises(DataFormatError, match=r"\.ts or \.csv"):
        read_dataset(write(tmp_path, "cases.txt", "x"))


# --------------------------------------------------------------------------- crafted .ts files


def test_unequal_lengths_pad_to_the_longest_by_repeating_the_first_sample(tmp_path: Path) -> None:
    path = write(tmp_path, "u.ts", ts_text(["1,2,3,4:5,6,7,8:a", "9,10:11,12:b"]))
    ds = read_ts(path)
    assert ds.x.shape == (2, 4, 2)
    np.testing.assert_array_equal(ds.x[1, :, 0], [9, 9, 9, 10])
    np.testing.assert_array_equal(ds.x[1, :, 1], [11, 11, 11, 12])
    np.testing.assert_array_equal(ds.x[0, :, 0], [1, 2, 3, 4])
    assert ds.lengths.tolist() == [4, 2]


def test_crop_keeps_the_last_samples_and_pad_the_end_aligned(tmp_path: Path) -> None:
    path = write(tmp_path, "u.ts", ts_text(["1,2,3,4:5,6,7,8:a", "9,10:11,12:b"]))
    ds = read_ts(path, length=3)
    np.testing.assert_array_equal(ds.x[0], [[2, 6], [3, 7], [4, 8]])
    np.testing.assert_array_equal(ds.x[1], [[9, 11], [9, 11], [10, 12]])
    assert ds.lengths.tolist() == [4, 2]


def test_fit_length_matches_a_list_slicing_reference() -> None:
    rng = np.random.default_rng(3)
    cases = [rng.normal(size=(t, 2)) for t in (1, 5, 9, 12)]
    for length in (1, 4, 9, 15):
        out = fit_length(cases, length)
        for case, row in zip(cases, out, strict=True):
            rows = [list(r) for r in case]
            expected = (
                rows[-length:] if len(rows) >= length else ([rows[0]] * (length - len(rows)) + rows)
            )
            np.testing.assert_allclose(row, np.array(expected, dtype=np.float32))


def test_string_labels_take_the_header_order(tmp_path: Path) -> None:
    text = ts_text(
        ["1:2:Walking", "3:4:Standing", "5:6:Walking"], class_label="true Walking Standing Sitting"
    )
    ds = read_ts(write(tmp_path, "s.ts", text))
    assert ds.labels == ("Walking", "Standing", "Sitting")
    assert ds.y.tolist() == [0, 1, 0]


def test_given_labels_fix_the_ids_and_unknown_labels_name_the_line(tmp_path: Path) -> None:
    text = ts_text(["1:2:Walking", "3:4:Standing"], class_label="true Walking Standing")
    path = write(tmp_path, "s.ts", text)
    assert read_ts(path, labels=["Standing", "Walking"]).y.tolist() == [1, 0]
    with pytest.raises(DataFormatError, match=r"s\.ts: line 10: class label 'Standing' is not one"):
        read_ts(path, labels=["Walking", "Running"])


def test_unlabelled_file_has_no_y_and_keeps_the_given_labels(tmp_path: Path) -> None:
    text = ts_text(["1,2:3,4", "5,6:7,8"], class_label="false")
    ds = read_ts(write(tmp_path, "n.ts", text), labels=["x", "y"])
    assert ds.y is None
    assert ds.labels == ("x", "y")
    assert ds.x.shape == (2, 2, 2)


def test_univariate_file_without_dimensions_header(tmp_path: Path) -> None:
    text = ts_text(["1,2,3:1", "4,5,6:2"], dimensions=None, class_label="true 1 2")
    ds = read_ts(write(tmp_path, "uni.ts", text.replace("@data", "@univariate true\n@data")))
    assert ds.x.shape == (2, 3, 1)
    assert ds.labels == ("1", "2")


def test_missing_values_are_interpolated_inside_and_held_at_the_edges(tmp_path: Path) -> None:
    text = ts_text(["?,1,?,?,4,?:NaN,2,2,2,2,2:a"], missing="true")
    ds = read_ts(write(tmp_path, "m.ts", text))
    np.testing.assert_allclose(ds.x[0, :, 0], [1, 1, 2, 3, 4, 4])
    np.testing.assert_allclose(ds.x[0, :, 1], [2, 2, 2, 2, 2, 2])


MALFORMED = [
    pytest.param(
        "@problemName X\n@classLabel true a\n1,2:a\n",
        3,
        "expected a @header line or @data",
        id="data-before-@data",
    ),
    pytest.param("@problemName X\n@classLabel true a\n", None, "missing @data", id="no-@data"),
    pytest.param(ts_text([]), None, "no cases after @data", id="empty-data"),
    pytest.param(ts_text(["1,2:3,4:a", "1,2:a"]), 10, "expected 2 channels", id="channel-count"),
    pytest.param(
        ts_text(["1,2:3,4:a", "1,x:3,4:a"]),
        10,
        "channel 1, value 2: expected a number",
        id="non-numeric",
    ),
    pytest.param(
        ts_text(["1,2:3,4:a", "1,2:3,4:c"]),
        10,
        "'c' is not declared in @classLabel",
        id="undeclared-label",
    ),
    pytest.param(
        ts_text(["1,2:3,4:a", "1,2:3,4:5,6:a"], dimensions=None),
        9,
        "expected 2 channels",
        id="inconsistent-dimensions",
    ),
    pytest.param(
        ts_text(["1,2:3,4:a", "1,2,3:3,4,5:a"], equal_length="true"),
        10,
        "expected 2 values per channel",
        id="unequal-but-equalLength-true",
    ),
    pytest.param(
        ts_text(["1,2:3,4:a"], equal_length="true", series_length=3),
        10,
        "expected 3 values per channel",
        id="wrong-seriesLength",
    ),
    pytest.param(ts_text(["1,2:3:a"]), 9, "same length", id="ragged-channels"),
    pytest.param(ts_text(["1,?:3,4:a"]), 9, "@missing false", id="missing-not-allowed"),
    pytest.param(
        ts_text(["?,?:3,4:a"], missing="true"), 9, "no observed value", id="channel-all-missing"
    ),
    pytest.param(ts_text(["1,2:3,4:"]), 9, "class label after the last ':'", id="empty-label"),
    pytest.param(ts_text(["1,2:3,inf:a"]), 9, "infinite", id="infinite-value"),
    pytest.param(
        ts_text(["1:2:a"]).replace("@timeStamps false", "@timeStamps true"),
        3,
        "@timeStamps true is not supported",
        id="timestamps",
    ),
    pytest.param(
        ts_text(["1:2:a"]).replace("@missing false", "@missing maybe"),
        4,
        "must be true or false",
        id="bad-boolean",
    ),
    pytest.param(ts_text(["1:2:a"], dimensions=0), 7, "positive integer", id="bad-dimensions"),
    pytest.param(
        ts_text(["1:2:a"]).replace("@data", "@target x\n@data"),
        8,
        "unknown header @target",
        id="unknown-header",
    ),
    pytest.param(
        ts_text(["1:2:a"], class_label="true"),
        6,
        "must list the labels",
        id="classLabel-without-labels",
    ),
]


@pytest.mark.parametrize(("text", "line", "fragment"), MALFORMED)
def test_malformed_ts_is_rejected_with_file_line_and_expectation(
    tmp_path: Path, text: str, line: int | None, fragment: str
) -> None:
    path = write(tmp_path, "bad.ts", text)
    with pytest.raises(DataFormatError) as caught:
        read_ts(path)
    message = str(caught.value)
    assert message.startswith("bad.ts: ")
    if line is not None:
        assert f": line {line}: " in message
    assert fragment in message


def test_unreadable_file_is_a_data_format_error(tmp_path: Path) -> None:
    with pytest.raises(DataFormatError, match="cannot read data file"):
        read_ts(tmp_path / "absent.ts")
    with pytest.raises(DataFormatError, match="not UTF-8"):
        latin1 = tmp_path / "latin.ts"
        latin1.write_bytes("# caf\u00e9\n@data\n".encode("latin-1"))
        read_ts(latin1)


# --------------------------------------------------------------------------- PaddleX CSV


def to_paddlex_csv(ds: Dataset, path: Path) -> None:
    """Write a Dataset in PaddleX long format: time, group_id, dim_0.., label."""
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        channels = [f"dim_{c}" for c in range(ds.n_channels)]
        writer.writerow(["time", "group_id", *channels, "label"])
        for case in range(len(ds)):
            for step in range(ds.window_length):
                writer.writerow(
                    [step, case, *(repr(float(v)) for v in ds.x[case, step]), ds.labels[ds.y[case]]]
                )


def test_uwave_train_round_trips_through_paddlex_csv(uwave_train: Dataset, tmp_path: Path) -> None:
    path = tmp_path / "uwave_train.csv"
    to_paddlex_csv(uwave_train, path)
    back = read_dataset(path)
    np.testing.assert_array_equal(back.x, uwave_train.x)
    np.testing.assert_array_equal(back.y, uwave_train.y)
    assert back.labels == uwave_train.labels
    assert back.source_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_csv_text_sorts_rows_by_time_and_keeps_group_first_appearance() -> None:
    text = (
        "group_id,time,a,b,label\ng2,2,20,200,up\ng1,1,1,10,down\ng2,1,10,100,up\ng1,0,0,0,down\n"
    )
    ds = read_paddlex_csv(text)
    np.testing.assert_array_equal(ds.x, [[[10, 100], [20, 200]], [[0, 0], [1, 10]]])
    assert ds.labels == ("down", "up")
    assert ds.y.tolist() == [1, 0]


def test_csv_date_times_sort_by_their_parsed_value() -> None:
    text = (
        "time,group_id,v\n"
        "2024-01-02T00:00:00+01:00,g,3\n"
        "2024-01-01 23:30:00,g,2\n"  # naive = UTC, later than 2024-01-01T23:00Z above
        "2024-01-01T12:00:00,g,1\n"
    )
    ds = read_paddlex_csv(text)
    np.testing.assert_array_equal(ds.x[0, :, 0], [1, 3, 2])
    assert ds.y is None


def test_csv_numeric_labels_sort_numerically_and_match_numerically_equal_model_labels() -> None:
    text = "time,group_id,v,label\n0,a,1,10\n0,b,2,2\n0,c,3,1\n"
    assert read_paddlex_csv(text).labels == ("1", "2", "10")
    ds = read_paddlex_csv(text, labels=["1.0", "2.0", "10.0"])
    assert ds.y.tolist() == [2, 1, 0]


def test_csv_named_columns_and_bytes_input() -> None:
    text = b"ts,device,x,y,z,cls\n0,d1,1,2,3,k\n1,d1,4,5,6,k\n"
    ds = read_paddlex_csv(
        text,
        group_column="device",
        time_column="ts",
        label_column="cls",
        feature_columns=["z", "x"],
    )
    np.testing.assert_array_equal(ds.x[0], [[3, 1], [6, 4]])
    assert ds.labels == ("k",)


def test_csv_is_padded_and_cropped_by_the_same_rule() -> None:
    text = "time,group_id,v\n0,a,1\n1,a,2\n2,a,3\n0,b,7\n"
    ds = read_paddlex_csv(text, length=2)
    np.testing.assert_array_equal(ds.x[:, :, 0], [[2, 3], [7, 7]])
    assert ds.lengths.tolist() == [3, 1]


BAD_CSV = [
    pytest.param("", None, "empty file", id="empty"),
    pytest.param("time,group_id,v\n", None, "no data rows", id="header-only"),
    pytest.param("time,v\n0,1\n", 1, "no group column 'group_id'", id="no-group"),
    pytest.param("group_id,v\na,1\n", 1, "no time column 'time'", id="no-time"),
    pytest.param("time,group_id,label\n0,a,x\n", 1, "no feature columns", id="no-features"),
    pytest.param(
        "time,group_id,v,w\n0,a,1,2\n1,a,oops,3\n",
        3,
        "column 'v': expected a finite number within float32 range (|x| <= 3.4e38), found 'oops'",
        id="non-numeric",
    ),
    pytest.param("time,group_id,v\n0,a,1\n1,a\n", 3, "expected 3 fields", id="short-row"),
    pytest.param(
        "time,group_id,v,label\n0,a,1,x\n1,b,1,y\n2,a,1,z\n",
        4,
        "group 'a' has label 'z'",
        id="label-changes-in-group",
    ),
    pytest.param("time,group_id,v\n0,a,1\nlater,a,2\n", 3, "expected a number", id="bad-time"),
    pytest.param("time,group_id,v\nnoon,a,1\n", 2, "ISO-8601", id="bad-date"),
    pytest.param("time,group_id,v\n0,a,1\n0,a,2\n", 3, "two rows at time '0'", id="duplicate-time"),
]


@pytest.mark.parametrize(("text", "line", "fragment"), BAD_CSV)
def test_malformed_csv_is_rejected_with_line_and_expectation(
    tmp_path: Path, text: str, line: int | None, fragment: str
) -> None:
    path = write(tmp_path, "bad.csv", text)
    with pytest.raises(DataFormatError) as caught:
        read_paddlex_csv(path)
    message = str(caught.value)
    assert message.startswith("bad.csv: ")
    if line is not None:
        assert f": line {line}: " in message
    assert fragment in message


def test_csv_label_outside_the_model_labels_names_the_group_line() -> None:
    text = "time,group_id,v,label\n0,a,1,x\n0,b,1,q\n"
    with pytest.raises(DataFormatError, match=r"<csv text>: line 3: class label 'q'"):
        read_paddlex_csv(text, labels=["x", "y"])


# --------------------------------------------------------------------------- split


def test_split_is_stratified_disjoint_and_complete(uwave_train: Dataset) -> None:
    train, val = split_train_validation(uwave_train, 0.2, seed=7)
    assert np.bincount(val.y, minlength=8).tolist() == [3] * 8
    assert np.bincount(train.y, minlength=8).tolist() == [12] * 8
    rows = {r.tobytes() for r in train.x} | {r.tobytes() for r in val.x}
    assert len(rows) == 120
    assert train.labels == val.labels == uwave_train.labels
    assert train.source_sha256 == uwave_train.source_sha256


def test_split_is_deterministic_for_a_seed_and_varies_across_seeds(uwave_train: Dataset) -> None:
    _, a = split_train_validation(uwave_train, 0.2, seed=1)
    _, b = split_train_validation(uwave_train, 0.2, seed=1)
    _, c = split_train_validation(uwave_train, 0.2, seed=2)
    np.testing.assert_array_equal(a.x, b.x)
    assert not np.array_equal(a.x, c.x)


def test_split_keeps_one_case_per_class_in_train_and_gives_one_to_validation() -> None:
    ds = Dataset(
        x=np.arange(6, dtype=np.float32).reshape(6, 1, 1),
        y=np.array([0, 0, 1, 1, 1, 1]),
        labels=("p", "q"),
        source_sha256="0",
        lengths=np.ones(6, dtype=np.int64),
    )
    train, val = split_train_validation(ds, 0.01, seed=0)
    assert np.bincount(val.y, minlength=2).tolist() == [1, 1]
    train, val = split_train_validation(ds, 0.9, seed=0)
    assert np.bincount(train.y, minlength=2).tolist() == [1, 1]
    train, val = split_train_validation(ds, 0.0, seed=0)
    assert (len(train), len(val)) == (6, 0)


def test_split_refuses_unlabelled_data_and_bad_fractions(uwave_train: Dataset) -> None:
    unlabelled = Dataset(
        x=uwave_train.x, y=None, labels=(), source_sha256="0", lengths=uwave_train.lengths
    )
    with pytest.raises(ModelError, match="without class labels"):
        split_train_validation(unlabelled, 0.2, seed=0)
    with pytest.raises(ModelError, match=r"\[0, 1\)"):
        split_train_validation(uwave_train, 1.0, seed=0)
