"""A simulated leaf-spine fabric with tenants, VNFs, service chains and events, written as
an inventory, sFlow datagrams (pcap) and ground truth (docs/sim.md).

```python
from fabricscope.sim import SimParams, simulate, load_truth
res = simulate("out/", SimParams.preset("demo"))
truth = load_truth("out/")
truth.path(truth.featured[0]["flow_id"])
```

Importing this package is cheap; NumPy, numba and pyarrow load when a run starts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fabricscope.sim.params import PRESETS, SimParams

if TYPE_CHECKING:
    from fabricscope.sim.engine import SimResult
    from fabricscope.sim.truth import Truth


def simulate(out_dir: Any, params: SimParams | None = None, *, progress: Any = None
             ) -> SimResult:
    """Write a simulated fabric to ``out_dir`` (see :func:`fabricscope.sim.engine.simulate`)."""
    from fabricscope.sim.engine import simulate as _simulate

    return _simulate(out_dir, params, progress=progress)


def load_truth(directory: Any) -> Truth:
    """The ground truth of a ``fabricscope sim`` output directory."""
    from fabricscope.sim.truth import load_truth as _load

    return _load(directory)


__all__ = ["PRESETS", "SimParams", "load_truth", "simulate"]
