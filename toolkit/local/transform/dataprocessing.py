"""``DataProcessing``: InputFilter, JoinSource and OutputFilter on CSV and JSON records.

Records are parsed by their content type: CSV (``text/csv``) rows become arrays of strings,
JSON / JSON Lines records become JSON values. As on SageMaker:

- ``InputFilter`` selects part of each input record before it is sent;
- ``JoinSource=Input`` joins each input record with its prediction: a CSV row gets the
  prediction's fields appended; a JSON object gets a ``SageMakerOutput`` attribute (anything
  that is not an object becomes ``{"SageMakerInput": ..., "SageMakerOutput": ...}``);
- ``OutputFilter`` selects part of the joined record (or of the prediction when not joined).
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from typing import Any

from sagedock.toolkit.errors import UserError

from .jsonpath import JsonPath, JsonPathError, parse_jsonpath

CSV = "csv"
JSON = "json"


class DataProcessingError(UserError):
    """A record does not fit the DataProcessing settings."""


def format_of(content_type: str | None) -> str | None:
    """``csv`` / ``json`` for the content types DataProcessing understands, else None."""
    if not content_type:
        return None
    mime = content_type.split(";", 1)[0].strip().lower()
    if mime in ("text/csv", "text/x-csv", "application/csv"):
        return CSV
    if mime in (
        "application/json",
        "application/jsonlines",
        "application/x-jsonlines",
        "application/jsonl",
        "text/json",
    ):
        return JSON
    return None


def parse_record(data: bytes, fmt: str) -> Any:
    text = data.decode("utf-8").rstrip("\r\n")
    if fmt == CSV:
        rows = list(csv.reader([text]))
        return rows[0] if rows else []
    return json.loads(text)


def _cell(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or value is None or isinstance(value, list | dict):
        return json.dumps(value)
    return str(value)


def serialize_record(value: Any, fmt: str) -> bytes:
    """One record as a line (``\\n``-terminated)."""
    if fmt == CSV:
        row = value if isinstance(value, list) else [value]
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerow([_cell(v) for v in row])
        return buf.getvalue().encode("utf-8")
    return (json.dumps(value, separators=(",", ":")) + "\n").encode("utf-8")


@dataclass(frozen=True)
class DataProcessing:
    """The three settings, parsed, with the record formats of input and output."""

    input_filter: JsonPath
    output_filter: JsonPath
    join_input: bool
    input_format: str | None
    output_format: str | None

    @classmethod
    def create(
        cls,
        *,
        input_filter: str = "$",
        output_filter: str = "$",
        join_source: str = "None",
        content_type: str | None = None,
        accept: str | None = None,
    ) -> DataProcessing:
        return cls(
            parse_jsonpath(input_filter),
            parse_jsonpath(output_filter),
            join_source == "Input",
            format_of(content_type),
            format_of(accept) or format_of(content_type),
        )

    @property
    def active(self) -> bool:
        return not (self.input_filter.is_identity and self.output_filter.is_identity) or (
            self.join_input
        )

    @property
    def per_record_output(self) -> bool:
        """Whether responses must be split into one output per input record."""
        return self.join_input or not self.output_filter.is_identity

    def check_formats(self) -> None:
        if not self.active:
            return
        if self.input_format is None:
            raise DataProcessingError(
                "DataProcessing needs CSV or JSON input: set TransformInput.ContentType to "
                "text/csv, application/json or application/jsonlines"
            )
        if self.per_record_output and self.output_format is None:
            raise DataProcessingError(
                "JoinSource/OutputFilter need CSV or JSON predictions: set TransformOutput.Accept "
                "to text/csv, application/json or application/jsonlines"
            )

    # -- input side -----------------------------------------------------------------------
    def filter_input(self, raw: bytes, where: str) -> bytes:
        """The payload to send for the input record *raw*."""
        if self.input_filter.is_identity:
            return raw
        assert self.input_format is not None
        value = self._parse(raw, self.input_format, where)
        try:
            selected = self.input_filter.apply(value)
        except JsonPathError as exc:
            raise DataProcessingError(f"{where}: InputFilter {exc}") from None
        return serialize_record(selected, self.input_format)

    # -- output side ----------------------------------------------------------------------
    def split_response(self, body: bytes, count: int, where: str) -> list[bytes]:
        """One output per input record: lines, or the elements of a JSON array (or of the one
        list inside a JSON object such as ``{"predictions": [...]}``) of length *count*."""
        if self.output_format == JSON:
            try:
                whole = json.loads(body.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError):
                whole = None  # JSON Lines: one prediction per line, handled below
            candidates = None
            if isinstance(whole, list):
                candidates = whole
            elif isinstance(whole, dict) and len(whole) == 1:
                (only,) = whole.values()
                candidates = only if isinstance(only, list) else None
            if candidates is not None and len(candidates) == count:
                return [json.dumps(v).encode("utf-8") for v in candidates]
        lines = [line for line in body.splitlines() if line.strip()]
        if len(lines) != count:
            raise DataProcessingError(
                f"{where}: the model returned {len(lines)} record(s) for {count} input record(s); "
                "JoinSource and OutputFilter need one prediction per record"
            )
        return lines

    def join(self, raw: bytes, output: bytes, where: str) -> bytes:
        """The output line for one input record *raw* and its prediction *output*."""
        assert self.output_format is not None
        prediction = self._parse(output, self.output_format, where)
        if self.join_input:
            assert self.input_format is not None
            source = self._parse(raw, self.input_format, where)
            if self.input_format == CSV:
                fields = list(source)
                if isinstance(prediction, list):
                    fields.extend(prediction)
                else:
                    fields.append(prediction)
                joined: Any = fields
            elif isinstance(source, dict):
                joined = {**source, "SageMakerOutput": prediction}
            else:
                joined = {"SageMakerInput": source, "SageMakerOutput": prediction}
            fmt = self.input_format
        else:
            joined = prediction
            fmt = self.output_format
        try:
            selected = self.output_filter.apply(joined)
        except JsonPathError as exc:
            raise DataProcessingError(f"{where}: OutputFilter {exc}") from None
        return serialize_record(selected, fmt)

    @staticmethod
    def _parse(data: bytes, fmt: str, where: str) -> Any:
        try:
            return parse_record(data, fmt)
        except (UnicodeDecodeError, json.JSONDecodeError, csv.Error) as exc:
            kind = "CSV" if fmt == CSV else "JSON"
            raise DataProcessingError(f"{where}: not a {kind} record: {exc}") from None
