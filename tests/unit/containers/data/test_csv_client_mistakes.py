"""CSV input the reader once refused wrongly or failed on with a traceback (issue 11)."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import pytest

from sagedock.containers.data.csv import parse_csv_payload, read_csv_files, read_csv_stream
from sagedock.toolkit.errors import UserError

# A number written with 700,000 digits: three of them make a first row of over 2 MiB.
LONG = "0." + "0" * 700_000 + "1"


def _long_first_row_csv() -> bytes:
    return f"1,{LONG},{LONG}\n0,2,3\n".encode()


def test_a_first_row_over_1_mib_is_read_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "train.csv"
    path.write_bytes(_long_first_row_csv())
    (batch,) = read_csv_files([path])
    np.testing.assert_array_equal(batch.label, [1, 0])
    np.testing.assert_allclose(batch.features, [[0, 0], [2, 3]])


def test_a_first_row_over_1_mib_is_read_from_a_pipe() -> None:
    (batch,) = read_csv_stream(io.BytesIO(_long_first_row_csv()))
    np.testing.assert_array_equal(batch.label, [1, 0])


def test_a_wide_first_row_over_1_mib_counts_every_column(tmp_path: Path) -> None:
    # The case: 500,001 columns, refused as 'expected 262145 columns, found 500001'.
    row = "1," + ",".join(["0.5"] * 500_000) + "\n"
    path = tmp_path / "train.csv"
    path.write_text(row + row)
    (batch,) = read_csv_files([path])
    assert batch.features.shape == (2, 500_000)


@pytest.mark.parametrize("line", ['1§"2"§3', '"1"\xa0"2"\xa0"3"', "\x00", "1\x012"])
def test_a_sniffed_non_ascii_delimiter_is_a_user_error(line: str) -> None:
    with pytest.raises(UserError, match="line 1"):
        parse_csv_payload(line.encode())


def test_a_non_ascii_delimiter_in_training_data_is_a_user_error(tmp_path: Path) -> None:
    path = tmp_path / "train.csv"
    path.write_text('1§"2"§3\n', encoding="utf-8")
    with pytest.raises(UserError, match="Could not determine delimiter on line 1§"):
        list(read_csv_files([path]))


def test_a_bare_cr_ends_a_request_row() -> None:
    # pyarrow (the parser) ends rows at \n, \r\n and \r alike; so does the first-row count.
    np.testing.assert_array_equal(parse_csv_payload(b"1,2,3\r4,5,6"), [[1, 2, 3], [4, 5, 6]])
    np.testing.assert_array_equal(parse_csv_payload(b"1,2\r\n3,4\r"), [[1, 2], [3, 4]])


def test_a_bare_cr_ends_a_training_row(tmp_path: Path) -> None:
    path = tmp_path / "train.csv"
    path.write_bytes(b"1,2,3\r0,5,6\r")
    (batch,) = read_csv_files([path])
    np.testing.assert_array_equal(batch.label, [1, 0])


def test_a_ragged_row_after_a_bare_cr_names_its_line() -> None:
    with pytest.raises(UserError, match="request: line 2: expected 3 columns, found 2"):
        parse_csv_payload(b"1,2,3\r4,5\n")


WIDE = 50_000


def test_a_wide_request_row_is_read_exactly() -> None:
    values = np.arange(WIDE, dtype=np.float32) / 8
    text = ",".join(map(str, values.tolist()))
    result = parse_csv_payload(f"{text}\n{text}\n".encode())
    np.testing.assert_array_equal(result, np.stack([values, values]))


def test_empty_fields_of_a_wide_row_are_missing_values() -> None:
    fields = ["1"] * WIDE
    fields[0] = fields[7] = fields[-1] = ""
    result = parse_csv_payload((",".join(fields) + "\r\n\n" + ",".join(["2"] * WIDE)).encode())
    assert result.shape == (2, WIDE)
    assert np.isnan(result[0, [0, 7, WIDE - 1]]).all()
    assert np.nansum(result[0]) == WIDE - 3


def test_a_ragged_wide_row_names_its_line() -> None:
    row = ",".join(["1"] * WIDE)
    with pytest.raises(UserError, match=f"request: line 3: expected {WIDE} columns, found 4"):
        parse_csv_payload(f"{row}\n{row}\n1,2,3,4\n".encode())


def test_a_non_number_in_a_wide_row_names_line_and_column() -> None:
    fields = ["1"] * WIDE
    fields[12_345] = "abc"
    with pytest.raises(UserError, match="request: line 1, column 12346: 'abc' is not a number"):
        parse_csv_payload(",".join(fields).encode())


def test_a_wide_training_file_keeps_label_and_weight(tmp_path: Path) -> None:
    path = tmp_path / "train.csv"
    rows = [[float(r), 0.5 + r] + [float(r * WIDE + c) for c in range(WIDE)] for r in range(3)]
    path.write_text("".join(",".join(map(str, row)) + "\n" for row in rows))
    (batch,) = read_csv_files([path], weight_column=True)
    np.testing.assert_array_equal(batch.label, [0, 1, 2])
    np.testing.assert_array_equal(batch.weight, [0.5, 1.5, 2.5])
    np.testing.assert_array_equal(batch.features, np.array(rows, dtype=np.float32)[:, 2:])


def test_an_empty_label_in_a_wide_training_file_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "train.csv"
    row = ",".join(["1"] * WIDE)
    path.write_text(f"{row}\n,{row[2:]}\n")
    with pytest.raises(UserError, match=r"train\.csv: line 2: the label"):
        list(read_csv_files([path]))


@pytest.mark.parametrize("columns", [3, 2000])  # column by column; the wide-row path
def test_a_value_beyond_float32_is_inf_without_warnings(columns: int) -> None:
    # As XGBoost's float32 matrices hold it (and refuse it); numpy warned on every chunk.
    body = ",".join(["1e300"] + ["2"] * (columns - 1)).encode()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        row = parse_csv_payload(body)[0]
    assert row[0] == np.inf and row[1] == 2
