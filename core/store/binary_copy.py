"""bytea values in and out of PostgreSQL by binary COPY, so their bytes cross the wire once.

psycopg2 sends and receives `bytea` as hex text: every payload byte costs two on the wire.
COPY … WITH (FORMAT binary) carries the raw bytes plus a few bytes of framing per row. On
SQLite (no wire) the same helpers run plain statements.

Binary COPY format (PostgreSQL docs, "COPY", binary format): an 11-byte signature, an int32
flags field and an int32 header-extension length (then that many bytes); per row an int16
field count and per field an int32 byte length (-1 for NULL) then the bytes; an int16 -1
trailer. Integers are big-endian.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Integer, LargeBinary, Select, String, Table, insert, select
from sqlalchemy import exc as sa_exc

SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
_HEADER = SIGNATURE + struct.pack("!ii", 0, 0)  # no OIDs, no header extension
_TRAILER = struct.pack("!h", -1)
CHUNK_BYTES = 1 << 20  # bytes handed to libpq per CopyData message on upload


class CopyFormatError(ValueError):
    """The server's binary COPY stream was not what this module expects (a bug, not bad data)."""


def read_bytes(conn: Connection, column: Any, *where: Any) -> bytes | None:
    """The bytea `column` of the one row matching `where`; None if no row or NULL."""
    rows = read_rows(conn, [column], *where)
    if len(rows) > 1:
        raise CopyFormatError(f"expected at most one row, got {len(rows)}")
    return rows[0][0] if rows else None


def read_rows(conn: Connection, columns: Sequence[Any], *where: Any) -> list[tuple[Any, ...]]:
    """The `columns` (integer, text or bytea ones) of every row matching `where`, in no
    particular order; bytea comes back as bytes. On PostgreSQL one binary COPY."""
    query = select(*columns).where(*where)
    if conn.dialect.name != "postgresql":
        return [
            tuple(bytes(v) if isinstance(v, memoryview | bytearray) else v for v in row)
            for row in conn.execute(query)
        ]
    sink = io.BytesIO()
    with _raw_cursor(conn) as cursor:
        inner = cursor.mogrify(*_compiled(conn, query)).decode()
        cursor.copy_expert(f"COPY ({inner}) TO STDOUT WITH (FORMAT binary)", sink)
    converters = [_converter(column.type) for column in columns]
    return [
        tuple(None if f is None else convert(f) for convert, f in zip(converters, row, strict=True))
        for row in parse_rows(sink.getbuffer(), len(columns))
    ]


def _converter(column_type: Any) -> Callable[[memoryview], Any]:
    """A binary COPY field of `column_type` as Python: its type's send format (big-endian
    integers, UTF-8 text, raw bytea)."""
    if isinstance(column_type, Integer):  # int4 or int8: the field's length says which
        return lambda field: int.from_bytes(field, "big", signed=True)
    if isinstance(column_type, String):
        return lambda field: bytes(field).decode()
    if isinstance(column_type, LargeBinary):
        return bytes
    raise TypeError(f"no binary COPY reader for a {column_type} column")


Field = str | int | float | bool  # text, integer (int4), double precision (float8), boolean


def insert_bytes(
    conn: Connection, table: Table, values: Mapping[str, Field], column: str, data: bytes
) -> None:
    """Insert one row: `values` (str for text columns, int for integer (int4) columns, float
    for double precision, bool for boolean) and the bytea `column` holding `data`.

    Columns not named take their server defaults. On PostgreSQL this is one binary COPY, which
    needs only INSERT on the named columns (no SELECT), so it also works for a role that may
    insert into a staging table and nothing else.
    """
    if conn.dialect.name != "postgresql":
        conn.execute(insert(table).values(**values, **{column: data}))
        return
    quote = conn.dialect.identifier_preparer.quote
    names = [*values, column]
    target = (
        quote(table.name) if table.schema is None else f"{quote(table.schema)}.{quote(table.name)}"
    )
    statement = (
        f"COPY {target} ({', '.join(quote(n) for n in names)}) FROM STDIN WITH (FORMAT binary)"
    )
    fields = [_binary_field(value) for value in values.values()]
    with _raw_cursor(conn) as cursor:
        cursor.copy_expert(statement, _RowReader(fields, data), CHUNK_BYTES)


def _binary_field(value: Field) -> bytes:
    # A field's binary COPY form is its type's send format: UTF-8 for text, one byte for
    # boolean, a big-endian int32 for integer (int4), a big-endian IEEE double for float8.
    if isinstance(value, bool):  # before int: a bool is an int too
        return b"\x01" if value else b"\x00"
    if isinstance(value, int):
        return struct.pack("!i", value)
    if isinstance(value, float):
        return struct.pack("!d", value)
    return value.encode()


def encode_row(fields: list[bytes | memoryview]) -> list[bytes | memoryview]:
    """A whole binary COPY stream holding one row of `fields`, as chunks to send in order."""
    chunks: list[bytes | memoryview] = [_HEADER, struct.pack("!h", len(fields))]
    for field in fields:
        chunks += [struct.pack("!i", len(field)), field]
    chunks.append(_TRAILER)
    return chunks


def parse_rows(stream: memoryview | bytes, columns: int) -> list[list[memoryview | None]]:
    """The fields of every row in a binary COPY stream of `columns` columns (None: NULL)."""
    view = memoryview(stream)
    if bytes(view[: len(SIGNATURE)]) != SIGNATURE:
        raise CopyFormatError("the COPY stream does not start with the binary signature")
    (extension,) = struct.unpack_from("!i", view, len(SIGNATURE) + 4)
    offset = len(SIGNATURE) + 8 + extension
    rows: list[list[memoryview | None]] = []
    while True:
        (fields,) = struct.unpack_from("!h", view, offset)
        offset += 2
        if fields == -1:
            return rows
        if fields != columns:
            raise CopyFormatError(f"expected {columns} columns per row, got {fields}")
        row: list[memoryview | None] = []
        for _ in range(fields):
            (length,) = struct.unpack_from("!i", view, offset)
            offset += 4
            row.append(None if length == -1 else view[offset : offset + length])
            offset += max(length, 0)
        rows.append(row)


class _RowReader:
    """A file-like `read` over `encode_row`'s chunks, without joining them into one copy."""

    def __init__(self, text_fields: list[bytes], data: bytes) -> None:
        self._chunks = encode_row([*text_fields, memoryview(data)])
        self._index = 0
        self._offset = 0

    def read(self, size: int = -1) -> bytes:
        size = CHUNK_BYTES if size is None or size < 0 else size
        out = bytearray()
        while len(out) < size and self._index < len(self._chunks):
            chunk = self._chunks[self._index]
            piece = chunk[self._offset : self._offset + size - len(out)]
            out += piece
            self._offset += len(piece)
            if self._offset >= len(chunk):
                self._index, self._offset = self._index + 1, 0
        return bytes(out)


def _compiled(conn: Connection, query: Select[Any]) -> tuple[str, dict[str, Any]]:
    # A volunteer login's connection maps table names to its views (core.store.volunteer).
    translate = conn.get_execution_options().get("schema_translate_map")
    compiled = query.compile(
        dialect=conn.dialect,
        schema_translate_map=translate,
        render_schema_translate=translate is not None,
        compile_kwargs={"render_postcompile": True},  # IN (…) lists as plain parameters
    )
    return str(compiled), dict(compiled.params)


@contextmanager
def _raw_cursor(conn: Connection) -> Iterator[Any]:
    """A DBAPI cursor on the connection's transaction; driver errors leave as SQLAlchemy's.

    COPY is not a statement SQLAlchemy can run, so its errors are wrapped here the way
    SQLAlchemy wraps its own (a dropped connection is invalidated), for the store to translate.
    """
    dbapi_connection = conn.connection.dbapi_connection
    assert dbapi_connection is not None, "a connection inside a transaction has a DBAPI one"
    driver_error = conn.dialect.loaded_dbapi.Error
    cursor = dbapi_connection.cursor()
    try:
        yield cursor
    except driver_error as error:
        lost = conn.dialect.is_disconnect(error, dbapi_connection, cursor)
        if lost:
            conn.invalidate(error)
        raise sa_exc.DBAPIError.instance(
            "COPY", None, error, driver_error, connection_invalidated=lost
        ) from error
    finally:
        if not cursor.closed and not dbapi_connection.closed:
            cursor.close()
