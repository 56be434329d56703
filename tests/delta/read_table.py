"""Reads a Delta table that lakelink wrote with a reader lakelink did not write, for the tests.

    read_table.py READER TABLE_PATH [VERSION] [STORAGE_OPTIONS_JSON]

READER is `deltalake` (the delta-rs Python package), `polars` (polars.read_delta) or `pyarrow`
(pyarrow's Parquet reader over the data files of the version, listed by deltalake). Prints one
JSON object describing the table (version, lakelink's transaction version, protocol, partition
columns, column types, its data files' paths and sizes), then one JSON object per row. Values are
tagged so that nothing is lost on the way to the test: `f:` and the double's 8 bytes in hex,
`d:` a decimal's text, `ts:` microseconds since the epoch, `date:` an ISO date, `b:` bytes in
hex, `s:` a string.
"""

import base64
import datetime
import decimal
import json
import os
import struct
import sys

EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


def tagged(value):
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return "f:" + struct.pack(">d", value).hex()
    if isinstance(value, decimal.Decimal):
        return "d:" + str(value)
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            raise SystemExit(f"a timestamp without a time zone: {value!r}")
        return "ts:" + str((value - EPOCH) // datetime.timedelta(microseconds=1))
    if isinstance(value, datetime.date):
        return "date:" + value.isoformat()
    if isinstance(value, (bytes, bytearray)):
        return "b:" + bytes(value).hex()
    if isinstance(value, str):
        return "s:" + value
    raise SystemExit(f"a value of an unexpected type: {value!r}")


def pyarrow_table(actions):
    import pyarrow

    return pyarrow.table(actions)


def main():
    reader, path = sys.argv[1], sys.argv[2]
    version = int(sys.argv[3]) if len(sys.argv) > 3 and sys.argv[3] != "-" else None
    options = json.loads(sys.argv[4]) if len(sys.argv) > 4 else None
    from deltalake import DeltaTable

    table = DeltaTable(path, version=version, storage_options=options)
    protocol = table.protocol()
    description = {
        "version": table.version(),
        "txn": table.transaction_version("lakelink"),
        "protocol": [protocol.min_reader_version, protocol.min_writer_version],
        "partition_columns": table.metadata().partition_columns,
        "files": {
            add["path"]: add["size_bytes"]
            for add in pyarrow_table(table.get_add_actions(flatten=True)).to_pylist()
        },
    }
    if reader == "deltalake":
        data = table.to_pyarrow_table()
        description["schema"] = {f.name: str(f.type) for f in data.schema}
        rows = data.to_pylist()
    elif reader == "polars":
        import polars

        frame = polars.read_delta(path, version=version, storage_options=options)
        description["schema"] = {name: str(t) for name, t in frame.schema.items()}
        rows = frame.to_dicts()
    elif reader == "pyarrow":
        import pyarrow
        import pyarrow.parquet

        rows = []
        schemas = {}
        if options:
            raise SystemExit("the pyarrow reader reads local tables only")
        for add in pyarrow.table(table.get_add_actions(flatten=True)).to_pylist():
            data = pyarrow.parquet.read_table(os.path.join(path, add["path"]))
            for field in data.schema:
                schemas[field.name] = str(field.type)
            partition = add["partition.PartitionId"]
            for row in data.to_pylist():
                row["PartitionId"] = partition
                rows.append(row)
        description["schema"] = schemas
    else:
        raise SystemExit(f"unknown reader {reader}")
    out = sys.stdout
    out.write(json.dumps(description) + "\n")
    for row in rows:
        out.write(json.dumps({k: tagged(v) for k, v in row.items()}) + "\n")
    out.flush()
    # The readers' native threads can abort the interpreter's teardown; the output is whole.
    os._exit(0)


main()
