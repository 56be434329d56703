"""Runs a maintenance operation of another engine (the deltalake package) on a Delta table
lakelink wrote, for the tests of what lakelink accepts from other writers.

    operate.py vacuum TABLE_PATH     VACUUM, deleting every file no version names
    operate.py compact TABLE_PATH    OPTIMIZE: compacts the data files (a commit of its own)
"""

import os
import sys

from deltalake import DeltaTable

operation, path = sys.argv[1], sys.argv[2]
table = DeltaTable(path)
if operation == "vacuum":
    deleted = table.vacuum(retention_hours=0, enforce_retention_duration=False, dry_run=False)
    print(len(deleted))
elif operation == "compact":
    print(table.optimize.compact())
else:
    raise SystemExit(f"unknown operation {operation}")
sys.stdout.flush()
os._exit(0)
