"""A one-shot query does not pay for what it does not use: reading a store and tracing
import neither numba (the decoder's JIT) nor pandas (pulled in by some pyarrow calls),
nor networkx when there is no inventory (no topology)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from fabricscope.records.present import ip_str
from fabricscope.store import open_store
from fabricscope.store.synthetic import synthetic_records

CODE = """
import json, sys
from datetime import datetime, timezone
from fabricscope import query
from fabricscope.store import open_store, RecordFilter
st = open_store(sys.argv[1])
src, dst = sys.argv[2], sys.argv[3]
n = st.select(RecordFilter(inner_src=src, inner_dst=dst)).num_rows
r = query.trace(src, dst, db=st, inventory="none",
                since=datetime(2020, 1, 1, tzinfo=timezone.utc),
                until=datetime(2030, 1, 1, tzinfo=timezone.utc))
print(json.dumps({"rows": n, "paths": len(r["paths"]),
                  "numba": "numba" in sys.modules, "pandas": "pandas" in sys.modules,
                  "networkx": "networkx" in sys.modules}))
"""


def test_reading_a_store_and_tracing_import_neither_numba_nor_pandas(tmp_path: Path) -> None:
    with open_store(tmp_path / "db", write=True) as st:
        st.append(synthetic_records(2000, start_ns=1_795_478_400 * 10**9,
                                    span_ns=60 * 10**9, seed=1))
    with open_store(tmp_path / "db") as st:
        row = st.select(columns=["inner_src", "inner_dst"], limit=1).to_pylist()[0]
    src, dst = ip_str(row["inner_src"]), ip_str(row["inner_dst"])
    out = subprocess.run([sys.executable, "-c", CODE, str(tmp_path / "db"), src, dst],
                         capture_output=True, text=True, check=True, timeout=120)
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["rows"] > 0 and got["paths"] >= 1  # the whole trace ran
    assert (got["numba"], got["pandas"]) == (False, False)
    assert got["networkx"] is False  # no inventory: no topology graph to build
