"""Per-interface health in a time window, from the store's interface counters (rates
derived between polls) and the discard samples (sFlow drops extension).

An interface is:

* ``critical`` when it had input/output errors or FCS errors, or a utilisation at or above
  ``critical_util`` in some poll interval;
* ``warning`` when it discarded packets (counters or discard samples) or reached
  ``warning_util``;
* ``ok`` when its counters were polled in the window and none of the above happened;
* ``unknown`` when no poll of it is in the window (no counters: nothing to judge).

A hop's health is its input and output interfaces' health, with the worse status.
Counters are read once per device (agent) per window and cached.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pyarrow as pa

STATUS_ORDER = {"unknown": 0, "ok": 1, "warning": 2, "critical": 3}


@dataclass(frozen=True)
class Thresholds:
    warning_util: float = 0.80
    critical_util: float = 0.95


def worst(*statuses: str) -> str:
    return max(statuses, key=lambda s: STATUS_ORDER.get(s, 0)) if statuses else "unknown"


def _f(v: Any) -> float:
    return 0.0 if v is None else float(v)


class HealthSource:
    """Health lookups against a store (anything with ``counters`` and ``select``)."""

    def __init__(self, store: Any, thresholds: Thresholds | None = None) -> None:
        self.store = store
        self.th = thresholds or Thresholds()
        self._counters: dict[tuple[str, datetime, datetime], dict[int, list[dict[str, Any]]]] = {}
        self._discards: dict[tuple[str, datetime, datetime], pa.Table] = {}

    def _polls(self, agent: str, since: datetime, until: datetime
               ) -> dict[int, list[dict[str, Any]]]:
        key = (agent, since, until)
        if key not in self._counters:
            t = self.store.counters(agent, None, since, until)
            by_if: dict[int, list[dict[str, Any]]] = {}
            for row in t.to_pylist():
                # counter samples without an interface (OVS host/app resources) are skipped
                if row["ifindex"] is not None:
                    by_if.setdefault(int(row["ifindex"]), []).append(row)
            self._counters[key] = by_if
        return self._counters[key]

    def _discard_table(self, agent: str, since: datetime, until: datetime) -> pa.Table:
        key = (agent, since, until)
        if key not in self._discards:
            from fabricscope.store.filters import RecordFilter

            self._discards[key] = self.store.select(
                RecordFilter(since=since, until=until, agent=agent, kind="discard"),
                columns=["in_if", "out_if", "discard_reason"])
        return self._discards[key]

    def interface(self, agent: str, ifindex: int | None, since: datetime,
                  until: datetime) -> dict[str, Any]:
        if ifindex is None:
            return {"status": "unknown", "flags": [], "polls": 0}
        polls = self._polls(agent, since, until).get(int(ifindex), [])
        dis = self._discard_table(agent, since, until)
        reasons: Counter[int] = Counter()
        n_dis = 0
        if dis.num_rows:
            for r in dis.to_pylist():
                if r["in_if"] == ifindex or r["out_if"] == ifindex:
                    n_dis += 1
                    if r["discard_reason"] is not None:
                        reasons[int(r["discard_reason"])] += 1
        out: dict[str, Any] = {"polls": len(polls), "discard_samples": n_dis}
        if reasons:
            out["discard_reasons"] = dict(reasons.most_common(5))
        flags: list[str] = []
        status = "unknown"
        if polls:
            status = "ok"
            iv = [_f(p["interval_s"]) for p in polls]

            def total(col: str) -> float:
                return sum(_f(p[col]) * s for p, s in zip(polls, iv, strict=True))

            util = [max(_f(p["in_util"]), _f(p["out_util"])) for p in polls]
            errors = total("in_errors_ps") + total("out_errors_ps")
            fcs = total("fcs_errors_ps")
            discards = total("in_discards_ps") + total("out_discards_ps")
            out.update({
                "port_name": polls[-1].get("port_name"),
                "speed": polls[-1].get("speed"),
                "max_util": round(max(util), 4),
                "avg_util": round(sum(util) / len(util), 4),
                "max_in_bps": max(_f(p["in_bps"]) for p in polls),
                "max_out_bps": max(_f(p["out_bps"]) for p in polls),
                "errors": round(errors), "fcs_errors": round(fcs), "discards": round(discards),
                "resets": sum(1 for p in polls if p.get("reset")),
            })
            if errors > 0 or fcs > 0:
                flags.append("errors")
                status = worst(status, "critical")
            if discards > 0:
                flags.append("discards")
                status = worst(status, "warning")
            if max(util) >= self.th.critical_util:
                flags.append("congested")
                status = worst(status, "critical")
            elif max(util) >= self.th.warning_util:
                flags.append("busy")
                status = worst(status, "warning")
        if n_dis:
            flags.append("discard_samples")
            status = worst(status, "warning")
        out["status"] = status
        out["flags"] = flags
        return out

    def hop(self, agent: str | None, in_if: int | None, out_if: int | None,
            since: datetime, until: datetime) -> dict[str, Any]:
        if agent is None:
            return {"status": "unknown", "flags": [], "reason": "no sFlow agent"}
        i = self.interface(agent, in_if, since, until)
        o = self.interface(agent, out_if, since, until)
        flags = sorted({*(f"in:{f}" for f in i["flags"]), *(f"out:{f}" for f in o["flags"])})
        return {"status": worst(i["status"], o["status"]), "flags": flags, "in": i, "out": o}
