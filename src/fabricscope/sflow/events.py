"""sFlow decode events (codes 64..127 of the shared event table, ``decode/events.py``).

Every check that fails while walking a datagram counts one of these by name; an ERROR/TRUNC
event met inside a flow or discard sample also marks that sample's record (``error``
column). Datagram-level events (bad version, a datagram cut short before its first sample)
are counted only: there is no record to mark. INFO events are only counted.
"""

from __future__ import annotations

from fabricscope.decode.events import ERROR, INFO, TRUNC, register_events

SFLOW_EVENTS: tuple[tuple[int, str, int, str], ...] = (
    (64, "sflow_bad_version", ERROR, "datagram version is not 5 (v2/v4 are not decoded)"),
    (65, "sflow_truncated_datagram", TRUNC,
     "datagram ends inside its header or inside a sample's fixed fields"),
    (66, "sflow_bad_sample_length", ERROR,
     "sample length runs past the datagram or is shorter than the sample's fixed fields"),
    (67, "sflow_bad_record_length", ERROR,
     "record length runs past its sample, or is too short for the record's fields"),
    (68, "sflow_bad_header_length", ERROR,
     "raw packet header: sampled header length runs past its record"),
    (69, "sflow_unknown_address_type", ERROR,
     "address type is neither IPv4 (1) nor IPv6 (2): the rest cannot be located"),
    (70, "sflow_count_too_large", ERROR,
     "a count (samples, records, AS path, communities) exceeds what the bytes left can hold"),
    (71, "sflow_unknown_sample", INFO, "sample of an unknown enterprise/format: skipped"),
    (72, "sflow_unknown_record", INFO, "flow record of an unknown enterprise/format: skipped"),
    (73, "sflow_unknown_counter_record", INFO,
     "counter record of an unknown enterprise/format: skipped"),
    (74, "sflow_unknown_header_protocol", INFO,
     "raw packet header of a protocol other than Ethernet, IPv4, IPv6: not decoded"),
    (75, "sflow_duplicate_record", INFO,
     "a second record of the same kind in one sample (raw header...): the first one is kept"),
    (76, "sflow_trailing_bytes", INFO, "bytes left after the last declared sample"),
    (77, "sflow_bad_string_length", ERROR, "port name longer than 255 bytes or its record"),
    (78, "sflow_too_many_port_names", INFO,
     "more than 32,767 distinct port names in one counters batch: the further ones are "
     "left out (null), the counters kept"),
)

EV_BAD_VERSION = 64
EV_TRUNCATED_DATAGRAM = 65
EV_BAD_SAMPLE_LENGTH = 66
EV_BAD_RECORD_LENGTH = 67
EV_BAD_HEADER_LENGTH = 68
EV_UNKNOWN_ADDRESS_TYPE = 69
EV_COUNT_TOO_LARGE = 70
EV_UNKNOWN_SAMPLE = 71
EV_UNKNOWN_RECORD = 72
EV_UNKNOWN_COUNTER_RECORD = 73
EV_UNKNOWN_HEADER_PROTOCOL = 74
EV_DUPLICATE_RECORD = 75
EV_TRAILING_BYTES = 76
EV_BAD_STRING_LENGTH = 77
EV_TOO_MANY_PORT_NAMES = 78

SFLOW_EVENT_NAMES: tuple[str, ...] = tuple(name for _, name, _, _ in SFLOW_EVENTS)

register_events(SFLOW_EVENTS)
