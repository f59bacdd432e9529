"""Correlation: tie telemetry identities to names and rebuild paths.

* ``names``: raw identity -> inventory name, time-aware, with the raw fallback
  (an IP address, ``agent:ifIndex``) where the inventory knows nothing.
* ``observe``: records of one query -> observations (per inner flow, tunnel segment,
  outer 5-tuple and observation point), aggregated with DuckDB.
* ``paths``: observations -> segments chained through VNF hosts -> ECMP paths with
  ordered hops.
* ``topology``: the underlay graph from inventory links (networkx); inferred hops.
* ``health``: per-interface health from counters and discard samples.
"""
