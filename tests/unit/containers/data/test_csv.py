from __future__ import annotations

import io
from pathlib import Path
from typing import Any, BinaryIO, cast

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sagedock.containers.data import csv as csv_module
from sagedock.containers.data.csv import (
    parse_csv_payload,
    read_csv_files,
    read_csv_stream,
    sniff_delimiter,
)
from sagedock.toolkit.errors import UserError
from tests.fixtures.xgboost import make_dataset, write_csv


def _read(files: list[Path], **kw: object) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    batches = list(read_csv_files(files, **kw))  # type: ignore[arg-type]
    x = np.concatenate([b.features for b in batches])
    y = np.concatenate([b.label for b in batches])  # type: ignore[misc]
    w = batches[0].weight
    return x, y, (np.concatenate([b.weight for b in batches]) if w is not None else None)  # type: ignore[misc]


@pytest.mark.parametrize("delimiter", [",", "\t", ";", "|", " "])
def test_label_is_column_zero_and_the_delimiter_is_sniffed(tmp_path: Path, delimiter: str) -> None:
    data = make_dataset("regression", rows=50, cols=4)
    path = write_csv(tmp_path / "train.csv", data.x, data.y, delimiter=delimiter)
    x, y, w = _read([path])
    np.testing.assert_allclose(x, data.x, rtol=1e-6)
    np.testing.assert_allclose(y, data.y, rtol=1e-6)
    assert w is None


def test_csv_weights_take_column_one(tmp_path: Path) -> None:
    data = make_dataset("binary", rows=20, cols=3)
    weights = np.linspace(0.1, 2.0, 20).astype(np.float32)
    path = write_csv(tmp_path / "w.csv", data.x, data.y, weights=weights)
    x, _, w = _read([path], weight_column=True)
    np.testing.assert_allclose(w, weights, rtol=1e-6)
    np.testing.assert_allclose(x, data.x, rtol=1e-6)


def test_several_files_are_read_in_order_in_blocks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sagedock.containers.data import csv as csv_reader

    monkeypatch.setattr(csv_reader, "BATCH_BYTES", 8 << 10)  # a few parsed blocks per batch
    data = make_dataset("regression", rows=3000, cols=6)
    a = write_csv(tmp_path / "a.csv", data.x[:1000], data.y[:1000])
    b = write_csv(tmp_path / "b.csv", data.x[1000:], data.y[1000:])
    batches = list(read_csv_files([a, b], block_size=16 << 10))
    assert len(batches) == 3  # 1024-row batches: 1000 rows of a.csv, 2000 of b.csv
    # Row-major: XGBoost reads the rows of every batch in each of its passes.
    assert all(batch.features.flags.c_contiguous for batch in batches)
    x = np.concatenate([b.features for b in batches])
    np.testing.assert_allclose(x, data.x, rtol=1e-6)
    y = np.concatenate([b.label for b in batches])  # type: ignore[misc]
    np.testing.assert_allclose(y, data.y, rtol=1e-6)


def test_empty_fields_are_missing_values(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_text("1,2,,4\n0,,6,\n")
    x, y, _ = _read([path])
    assert y.tolist() == [1.0, 0.0]
    assert np.isnan(x[0, 1]) and np.isnan(x[1, 0]) and np.isnan(x[1, 2])
    assert x[0, 2] == 4.0


def test_a_last_line_without_newline_is_read(tmp_path: Path) -> None:
    path = tmp_path / "n.csv"
    path.write_bytes(b"1,2,3\n0,4,5")
    x, y, _ = _read([path])
    assert y.tolist() == [1.0, 0.0] and x.tolist() == [[2.0, 3.0], [4.0, 5.0]]


def test_shared_csv_fixtures_give_five_rows_of_five_features(shared_testdata: Path) -> None:
    base = shared_testdata / "xgboost" / "data" / "csv"
    x, y, _ = _read([base / "train.csv"])
    assert x.shape == (5, 5) and y.shape == (5,)
    x, _, w = _read([base / "train.csv.weights"], weight_column=True)
    assert x.shape == (5, 5) and w is not None and np.allclose(w, 0.2)
    files = sorted((base / "multiple_files").iterdir())
    x, _, _ = _read(files)
    assert x.shape == (10, 5)


def test_a_header_row_is_refused_naming_file_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "h.csv"
    path.write_text("label,age,size\n1,2,3\n")
    with pytest.raises(UserError) as info:
        _read([path])
    assert info.value.message.startswith("h.csv: line 1, column 1: 'label' is not a number")
    assert "header" in info.value.message


def test_a_non_number_names_the_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("1,2,3\n" * 5 + "0,2,abc\n")
    with pytest.raises(UserError, match=r"^bad.csv: line 6, column 3: 'abc' is not a number$"):
        _read([path])


def test_a_ragged_row_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "ragged.csv"
    path.write_text("1,2,3\n1,2\n")
    with pytest.raises(UserError, match=r"^ragged.csv: line 2: expected 3 columns.*found 2$"):
        _read([path])


def test_an_empty_label_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "nolabel.csv"
    path.write_text("1,2,3\n,2,3\n")
    with pytest.raises(UserError, match=r"^nolabel.csv: line 2: the label \(column 1\) is empty$"):
        _read([path])


def test_files_with_different_column_counts_are_refused(tmp_path: Path) -> None:
    a = tmp_path / "a.csv"
    a.write_text("1,2,3\n")
    b = tmp_path / "b.csv"
    b.write_text("1,2,3,4\n")
    with pytest.raises(UserError, match=r"^b\.csv: line 1: expected 3 columns, found 4$"):
        _read([a, b])


def test_a_one_column_file_has_no_delimiter(tmp_path: Path) -> None:
    path = tmp_path / "one.csv"
    path.write_text("1.5\n2.5\n")
    with pytest.raises(UserError, match=r"^Could not determine delimiter on line 1\.5"):
        _read([path])


def test_sniffing_never_picks_a_character_of_a_number() -> None:
    assert sniff_delimiter("1.5,2.5,3.5\n") == ","
    assert sniff_delimiter("1e-05\t2.0\n") == "\t"
    with pytest.raises(UserError):
        sniff_delimiter("12345\n")


def test_pipe_stream_is_sniffed_then_parsed() -> None:
    data = make_dataset("regression", rows=500, cols=3)
    buffer = io.BytesIO()
    np.savetxt(buffer, np.column_stack([data.y, data.x]), delimiter=";", fmt="%.9g")
    stream = io.BytesIO(buffer.getvalue().rstrip(b"\n"))  # last line without newline
    batches = list(read_csv_stream(stream, block_size=4096))
    x = np.concatenate([b.features for b in batches])
    np.testing.assert_allclose(x, data.x, rtol=1e-6)


def test_pipe_stream_errors_name_the_stream() -> None:
    with pytest.raises(UserError, match=r"^train_0: could not be read as CSV"):
        list(read_csv_stream(io.BytesIO(b"1,2\n1,x\n"), name="train_0"))


def test_payload_has_no_label_column() -> None:
    x = parse_csv_payload(b"1,2,3\n4,5,6\n")
    assert x.tolist() == [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]
    assert parse_csv_payload("0.5").tolist() == [[0.5]]
    assert np.isnan(parse_csv_payload(b"1,,3")[0, 1])


def test_payload_errors_name_the_line() -> None:
    with pytest.raises(UserError, match=r"^request: line 2: expected 3 columns"):
        parse_csv_payload(b"1,2,3\n4,5\n")


def test_blank_lines_filling_whole_chunks_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "gaps.csv"
    path.write_text("1,2,3\n4,5,6\n" + "\n" * 40 + "7,8,9\n" + "\n" * 40)
    x, y, _ = _read([path], block_size=16)  # several chunks hold nothing but line ends
    assert y.tolist() == [1.0, 4.0, 7.0]
    assert x.tolist() == [[2.0, 3.0], [5.0, 6.0], [8.0, 9.0]]


def test_values_are_rounded_to_the_nearest_float32(tmp_path: Path) -> None:
    texts = ["0.1", "16777217", "3.4028235e38", "1e-45", "-2.5", "0.30000001192092896"]
    path = tmp_path / "round.csv"
    path.write_text("".join(f"1,{t}\n" for t in texts))
    x, _, _ = _read([path])
    assert x[:, 0].tolist() == [float(np.float32(t)) for t in texts]


class _Trickle(io.RawIOBase):
    """A pipe that hands out at most 7 bytes per read."""

    def __init__(self, data: bytes) -> None:
        super().__init__()
        self._data = memoryview(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        count = min(7, len(buffer), len(self._data))
        buffer[:count] = self._data[:count]
        self._data = self._data[count:]
        return count


def test_pipe_stream_of_short_reads_is_read_whole() -> None:
    data = make_dataset("binary", rows=300, cols=4)
    buffer = io.BytesIO()
    np.savetxt(buffer, np.column_stack([data.y, data.x]), delimiter=",", fmt="%.9g")
    batches = list(read_csv_stream(cast(BinaryIO, _Trickle(buffer.getvalue())), block_size=1024))
    np.testing.assert_allclose(np.concatenate([b.features for b in batches]), data.x, rtol=1e-6)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.text(alphabet=sorted(csv_module._NUMBER_CHARS | {","}), min_size=1, max_size=600).filter(
        lambda s: "," in s[: csv_module.SNIFF_CHARS]
    )
)
def test_a_row_of_numbers_and_commas_is_sniffed_as_the_sniffer_would(line: str) -> None:
    """The shortcut for rows of numbers and commas answers what the sniffer's way answers."""
    sample = line[: csv_module.SNIFF_CHARS]
    assert csv_module._sniff(line) == "," == csv_module._sniff_sample(sample)
