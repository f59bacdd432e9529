"""sFlow v5: datagrams -> the same record batches as packet decoding, plus counters.

```python
from fabricscope.sflow import SflowDecoder
dec = SflowDecoder()                       # DecodeConfig optional
records, counters = dec.decode_payloads(buf, offset, length, ts_ns)
records, counters = dec.decode_datagrams(frames, packet_matrix, frame_indexes)
records, counters = dec.decode_bounded(frames, frame_indexes,
                                       PacketDecoder().datagram_bounds(frames, frame_indexes))
dec.events                                 # {"sflow_bad_sample_length": 1, ...}
dec.accounting.to_dict()                   # sequence gaps, agent drops... (accounting.py)
```

Modules: ``datagram.py`` (the spec and the numba walk), ``layout.py`` (counters, datagram
and sequence matrices), ``batch.py`` (Arrow), ``accounting.py`` (sequence/loss accounting,
Prometheus), ``encode.py`` (datagram encoder for tests and the simulator), ``events.py``,
``collector.py`` (the live collector behind ``fabricscope collect``).
"""

from __future__ import annotations

from fabricscope.sflow.accounting import Accounting
from fabricscope.sflow.decoder import SflowDecoder

__all__ = ["Accounting", "SflowDecoder"]
