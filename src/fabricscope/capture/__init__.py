"""Bytes in: streaming pcap / pcapng readers (gzip too) that hand out FrameBatch columns.

Formats: classic pcap (draft-ietf-opsawg-pcap: 24-byte file header, then 16-byte record
headers ``ts_sec | ts_frac | caplen | wirelen`` each followed by the frame) and pcapng
(draft-ietf-opsawg-pcapng: blocks ``type | total length | body | total length``). See
:mod:`.pcap` and :mod:`.pcapng` for the diagrams, :mod:`.reader` for the streaming.

```python
from fabricscope.capture import open_capture
with open_capture("trace.pcapng.gz") as cap:
    for batch in cap:          # FrameBatch: buf + offset/caplen/wirelen/ts_ns/... columns
        decode(batch)
```

Importing this package imports NumPy and numba; the walkers compile on first use (then
load from numba's on-disk cache).
"""

from fabricscope.capture.frames import FrameBatch, concat_batches
from fabricscope.capture.reader import Capture, CaptureStats, open_capture, read_all
from fabricscope.capture.writer import PcapngWriter, PcapWriter

__all__ = [
    "Capture",
    "CaptureStats",
    "FrameBatch",
    "PcapWriter",
    "PcapngWriter",
    "concat_batches",
    "open_capture",
    "read_all",
]
