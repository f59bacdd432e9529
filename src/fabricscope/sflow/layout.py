"""Working layouts of the sFlow walk besides the packet slot matrix (``decode/slots.py``).

* the **counters matrix** ``cm[C_*, j]``: one column per counter sample (compact or
  expanded), the generic (0:1), Ethernet (0:2) and port name (0:1005) records of that sample
  folded into one row; :data:`COUNTER_SLOTS` maps it to ``records.schema.COUNTER_COLUMNS``;
* the **datagram matrix** ``dg[D_*, k]``: one column per datagram, what the accounting needs
  (agent, sub-agent, sequence, uptime, samples) and how the datagram ended;
* the **sequence matrix** ``sq[Q_*, j]``: one column per sample of any kind, for the
  per-source sequence accounting.

Every slot is int64, -1 = absent (as in the packet matrix).
"""

from __future__ import annotations

# --- counters matrix ---------------------------------------------------------------------
C_TS = 0
C_AGENT_VER = 1
C_AGENT_HI = 2
C_AGENT_LO = 3
C_SUB_AGENT = 4
C_SEQ = 5
C_UPTIME = 6
C_SAMPLE_SEQ = 7
C_SOURCE_ID = 8
C_IFINDEX = 9
C_IFTYPE = 10
C_SPEED = 11
C_DIRECTION = 12
C_STATUS = 13
C_IN_OCTETS = 14
C_IN_UCAST = 15
C_IN_MCAST = 16
C_IN_BCAST = 17
C_IN_DISCARDS = 18
C_IN_ERRORS = 19
C_IN_UNKNOWN = 20
C_OUT_OCTETS = 21
C_OUT_UCAST = 22
C_OUT_MCAST = 23
C_OUT_BCAST = 24
C_OUT_DISCARDS = 25
C_OUT_ERRORS = 26
C_PROMISC = 27
C_FCS_ERRORS = 28
C_NAME_OFF = 29  # port name (0:1005): offset of the bytes in the decoded buffer
C_NAME_LEN = 30
C_DGRAM = 31  # datagram index (decoder-wide running count)
C_TS_PREC = 32
NCSLOTS = 33

# COUNTER_COLUMNS name -> counters-matrix slot (ip columns: (hi, lo, version))
COUNTER_SLOTS: dict[str, int] = {
    "ts": C_TS, "sub_agent": C_SUB_AGENT, "seq": C_SEQ, "uptime_ms": C_UPTIME,
    "sample_seq": C_SAMPLE_SEQ, "source_id": C_SOURCE_ID, "ifindex": C_IFINDEX,
    "iftype": C_IFTYPE, "speed": C_SPEED, "direction": C_DIRECTION, "status": C_STATUS,
    "in_octets": C_IN_OCTETS, "in_ucast": C_IN_UCAST, "in_mcast": C_IN_MCAST,
    "in_bcast": C_IN_BCAST, "in_discards": C_IN_DISCARDS, "in_errors": C_IN_ERRORS,
    "in_unknown": C_IN_UNKNOWN, "out_octets": C_OUT_OCTETS, "out_ucast": C_OUT_UCAST,
    "out_mcast": C_OUT_MCAST, "out_bcast": C_OUT_BCAST, "out_discards": C_OUT_DISCARDS,
    "out_errors": C_OUT_ERRORS, "promisc": C_PROMISC, "fcs_errors": C_FCS_ERRORS,
}
COUNTER_IP_SLOTS: dict[str, tuple[int, int, int]] = {
    "agent": (C_AGENT_HI, C_AGENT_LO, C_AGENT_VER),
}

# --- datagram matrix ---------------------------------------------------------------------
D_AGENT_VER = 0
D_AGENT_HI = 1
D_AGENT_LO = 2
D_SUB_AGENT = 3
D_SEQ = 4
D_UPTIME = 5
D_NSAMPLES = 6  # samples the datagram declares
D_SAMPLES = 7  # samples walked (any kind, unknown ones included)
D_FLOWS = 8  # flow/discard records emitted
D_COUNTERS = 9  # counter rows emitted
D_ERROR = 10  # first ERROR/TRUNC event met in the datagram, else -1
D_TS = 11
D_VERSION = 12
ND = 13

# --- sequence matrix ---------------------------------------------------------------------
Q_DGRAM = 0  # index of the datagram within the decode call
Q_KIND = 1  # records.schema KIND_FLOW / KIND_DISCARD / KIND_COUNTERS
Q_SOURCE = 2  # source id type << 32 | index
Q_SEQ = 3
Q_DROPS = 4  # the sample's drops field (flow, discard), else -1
NQ = 5
