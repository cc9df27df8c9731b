"""``_metadata`` written as a stream, holding one partition file's footer at a time.

A dataset's ``_metadata`` is a Parquet footer (Thrift ``FileMetaData``, compact protocol) whose row
groups are every partition file's, each column chunk naming its file. pyarrow builds it in memory
(``FileMetaData.append_row_groups``), at ~22 KB per row group of a 25-column catalog: 0.25 GB for
the 12,000 partitions of a million-target catalog, in the driver, at the end of every run. Here the
row groups are copied from each file's footer as raw Thrift, with only ``ColumnChunk.file_path``
added, and written out as they come: the same bytes pyarrow writes (checked by the tests), in
memory one footer (~3 KB) at a time.

Parquet's Thrift definitions: https://github.com/apache/parquet-format (``parquet.thrift``).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator

MAGIC = b"PAR1"
_STOP, _TRUE, _FALSE, _BYTE, _I16, _I32, _I64, _DOUBLE = 0, 1, 2, 3, 4, 5, 6, 7
_BINARY, _LIST, _SET, _MAP, _STRUCT = 8, 9, 10, 11, 12
#: FileMetaData fields; RowGroup.columns; ColumnChunk.file_path
NUM_ROWS, ROW_GROUPS, ROW_GROUP_COLUMNS, FILE_PATH = 3, 4, 1, 1


class FooterError(ValueError):
    """A Parquet footer this reader does not understand (damaged, or not Parquet)."""


def footer_of(data: bytes) -> bytes:
    """The Thrift FileMetaData of a whole Parquet file (or ``_metadata``) given as bytes' tail."""
    if len(data) < 12 or data[-4:] != MAGIC:
        raise FooterError("not a Parquet file: no PAR1 at its end")
    (length,) = struct.unpack("<I", data[-8:-4])
    if length + 8 > len(data):
        raise FooterError(f"footer length {length} exceeds the file")
    return data[-8 - length : -8]


class _Reader:
    def __init__(self, data: bytes, pos: int = 0):
        self.data, self.pos = data, pos

    def byte(self) -> int:
        if self.pos >= len(self.data):
            raise FooterError("footer ends inside a value")
        b = self.data[self.pos]
        self.pos += 1
        return b

    def varint(self) -> int:
        shift = result = 0
        while True:
            b = self.byte()
            result |= (b & 0x7F) << shift
            if not b & 0x80:
                return result
            shift += 7

    def zigzag(self) -> int:
        n = self.varint()
        return (n >> 1) ^ -(n & 1)

    def field(self, last_id: int) -> tuple[int, int]:
        """(field id, type) of the next field header; type 0 at the struct's end."""
        b = self.byte()
        kind, delta = b & 0x0F, b >> 4
        if kind == _STOP:
            return 0, _STOP
        return (last_id + delta if delta else self.zigzag()), kind

    def list_header(self) -> tuple[int, int]:
        b = self.byte()
        size = b >> 4
        return (self.varint() if size == 15 else size), b & 0x0F

    def skip(self, kind: int) -> None:
        if kind in (_TRUE, _FALSE):
            return
        if kind == _BYTE:
            self.pos += 1
        elif kind in (_I16, _I32, _I64):
            self.varint()
        elif kind == _DOUBLE:
            self.pos += 8
        elif kind == _BINARY:
            length = self.varint()  # read before pos: ``pos += varint()`` would lose its advance
            self.pos += length
        elif kind in (_LIST, _SET):
            size, element = self.list_header()
            for _ in range(size):
                self._skip_element(element)
        elif kind == _MAP:
            size = self.varint()
            if size:
                types = self.byte()
                for _ in range(size):
                    self._skip_element(types >> 4)
                    self._skip_element(types & 0x0F)
        elif kind == _STRUCT:
            last = 0
            while True:
                last, field_kind = self.field(last)
                if field_kind == _STOP:
                    return
                self.skip(field_kind)
        else:
            raise FooterError(f"unknown Thrift compact type {kind}")
        if self.pos > len(self.data):
            raise FooterError("footer ends inside a value")

    def _skip_element(self, kind: int) -> None:
        if kind in (_TRUE, _FALSE):  # a bool in a container is one byte
            self.pos += 1
        else:
            self.skip(kind)


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        if n < 0x80:
            out.append(n)
            return bytes(out)
        out.append((n & 0x7F) | 0x80)
        n >>= 7


def _zigzag(n: int, bits: int) -> bytes:
    return _varint((n << 1) ^ (n >> (bits - 1)))


def _field_header(field_id: int, last_id: int, kind: int) -> bytes:
    delta = field_id - last_id
    if 0 < delta <= 15:
        return bytes([(delta << 4) | kind])
    return bytes([kind]) + _zigzag(field_id, 16)


def _list_header(size: int, element: int) -> bytes:
    if size < 15:
        return bytes([(size << 4) | element])
    return bytes([0xF0 | element]) + _varint(size)


def _fields(data: bytes) -> list[tuple[int, int, bytes]]:
    """A struct's fields as (id, type, the value's raw bytes), in order."""
    reader, fields, last = _Reader(data), [], 0
    while True:
        last, kind = reader.field(last)
        if kind == _STOP:
            return fields
        start = reader.pos
        reader.skip(kind)
        fields.append((last, kind, data[start : reader.pos]))


def _struct(fields: Iterable[tuple[int, int, bytes]]) -> bytes:
    out, last = bytearray(), 0
    for field_id, kind, value in fields:
        out += _field_header(field_id, last, kind) + value
        last = field_id
    return bytes(out + b"\x00")


def _elements(value: bytes) -> tuple[int, list[bytes]]:
    """(element type, each element's raw bytes) of a raw Thrift list of structs."""
    reader = _Reader(value)
    size, element = reader.list_header()
    items = []
    for _ in range(size):
        start = reader.pos
        reader.skip(element)
        items.append(value[start : reader.pos])
    return element, items


def _with_file_path(row_group: bytes, path: str) -> bytes:
    """A raw RowGroup whose every ColumnChunk names ``path`` (as ``set_file_path`` does)."""
    encoded = path.encode()
    path_value = _varint(len(encoded)) + encoded
    fields = []
    for field_id, kind, value in _fields(row_group):
        if field_id == ROW_GROUP_COLUMNS:
            element, chunks = _elements(value)
            new_chunks = [
                _struct(
                    [(FILE_PATH, _BINARY, path_value)]
                    + [f for f in _fields(chunk) if f[0] != FILE_PATH]
                )
                for chunk in chunks
            ]
            value = _list_header(len(new_chunks), element) + b"".join(new_chunks)
        fields.append((field_id, kind, value))
    return _struct(fields)


def _schema(fields: list[tuple[int, int, bytes]]) -> bytes | None:
    return next((value for field_id, _kind, value in fields if field_id == 2), None)


def stream_metadata(footers: Iterable[tuple[str, bytes]]) -> Iterator[bytes]:
    """The bytes of ``_metadata`` for partition files given as (relative path, footer), in
    order: the first file's schema and key-value metadata, every file's row groups with the file
    path set, the summed row count. Holds one footer at a time, except that the row groups must
    be counted before they are written, so the footers are read twice (``footers`` is called as
    an iterable twice: pass something re-iterable that reads lazily)."""
    count, rows, first = 0, 0, None
    for path, footer in footers:
        fields = _fields(footer)
        first = first or fields
        if _schema(fields) != _schema(first):  # as pyarrow's append_row_groups refuses
            raise FooterError(f"{path} has another schema than the first partition file")
        for field_id, _kind, value in fields:
            if field_id == NUM_ROWS:
                rows += _Reader(value).zigzag()
            elif field_id == ROW_GROUPS:
                count += len(_elements(value)[1])
    if first is None:
        raise FooterError("no partition file to collect")
    head = bytearray(MAGIC)
    length = 0
    last = 0
    prefix = bytearray()
    for field_id, kind, value in first:
        if field_id >= ROW_GROUPS:
            break
        if field_id == NUM_ROWS:
            value = _zigzag(rows, 64)
        prefix += _field_header(field_id, last, kind) + value
        last = field_id
    prefix += _field_header(ROW_GROUPS, last, _LIST) + _list_header(count, _STRUCT)
    yield bytes(head + prefix)
    length += len(prefix)
    written = 0
    for path, footer in footers:
        for field_id, _kind, value in _fields(footer):
            if field_id == ROW_GROUPS:
                for row_group in _elements(value)[1]:
                    chunk = _with_file_path(row_group, path)
                    length += len(chunk)
                    written += 1
                    yield chunk
    if written != count:
        raise FooterError(f"{count} row groups counted, {written} on the second read")
    tail, last = bytearray(), ROW_GROUPS
    for field_id, kind, value in first:
        if field_id > ROW_GROUPS:
            tail += _field_header(field_id, last, kind) + value
            last = field_id
    tail += b"\x00"
    length += len(tail)
    yield bytes(tail) + struct.pack("<I", length) + MAGIC
