"""The decoder's working layout: one int64 matrix, one row per slot, one column per record.

The numba walk writes every decoded field of record ``i`` into ``m[SLOT, i]`` (column-major
per slot, so each slot is a contiguous NumPy row that becomes an Arrow column without a
Python object per record). ``-1`` means absent for every slot except the address halves
(``*_HI``/``*_LO``), whose presence is given by the matching ``*_IPVER`` slot (4 or 6).

IPv4 addresses are held IPv4-mapped (``::ffff:a.b.c.d``): HI = 0, LO = 0xffff << 32 | addr.

Layout: a header block of ``NX`` slots for the wire (outermost) headers (``NH`` fields,
then the walk's working slots for that level), the same block for the innermost headers, ``MAX_DEPTH`` tunnel-layer blocks of ``NT`` slots, then per-record
metadata and sFlow slots. ``records/schema.py`` maps these slots to named columns.
"""

from __future__ import annotations

# --- header block (relative offsets; the same for wire and inner) -----------------------
H_ETH_SRC = 0
H_ETH_DST = 1
H_VLAN = 2  # outermost 802.1Q/802.1ad VLAN id at this level
H_VLAN2 = 3  # second tag (QinQ inner/C-tag)
H_ETHERTYPE = 4  # ethertype of the L3 payload after VLAN/MPLS
H_MPLS = 5  # top MPLS label at this level
H_MPLS_N = 6  # MPLS labels in the stack
H_IPVER = 7
H_SRC_HI = 8
H_SRC_LO = 9
H_DST_HI = 10
H_DST_LO = 11
H_PROTO = 12  # IP protocol (IPv6: the upper-layer next header after extensions)
H_TTL = 13  # IPv4 TTL / IPv6 hop limit
H_TOS = 14  # IPv4 TOS / IPv6 traffic class
H_FRAG = 15  # bit0 more-fragments, bit1 offset != 0, bit2 don't-fragment
H_IPLEN = 16  # IPv4 total length / IPv6 payload length + 40
H_SPORT = 17
H_DPORT = 18
H_TCP_FLAGS = 19
H_ICMP_TYPE = 20
H_ICMP_CODE = 21
NH = 22

# --- after the fields, each header block has the walk's working slots for its level
# (the tunnel the level's headers announce, entered before the next header block; never
# packed into a column)
X_PT_TYPE = NH + 0  # pending tunnel: type
X_PT_VNI = NH + 1
X_PT_A = NH + 2
X_PT_B = NH + 3
X_PT_GOFF = NH + 4  # pending GENEVE options offset/length
X_PT_GLEN = NH + 5
NX = NH + 6  # slots of a header block: fields and working slots

WIRE = 0
INNER = NX

# --- tunnel layer block (relative) -------------------------------------------------------
T_TYPE = 0  # tunnel type code (decode.protocols.TUN_*)
T_VNI = 1  # VXLAN/GENEVE VNI, NVGRE VSID, GRE key, STT context, MPLS-in-UDP top label
T_IPVER = 2  # IP version of the header enclosing this tunnel
T_SRC_HI = 3
T_SRC_LO = 4
T_DST_HI = 5
T_DST_LO = 6
T_SPORT = 7  # UDP/TCP ports of the enclosing transport (UDP tunnels, STT)
T_DPORT = 8
T_A = 9  # type-specific: GENEVE OVN ingress port key, NVGRE FlowID, ERSPAN session id,
T_B = 10  # NSH SPI (A) / SI (B), GRE flags; GENEVE OVN egress port key, ERSPAN version
NT = 11
MAX_DEPTH = 4
TUN = 2 * NX


def tun_slot(layer: int, field: int) -> int:
    return TUN + layer * NT + field


# --- per-record metadata -----------------------------------------------------------------
_M = TUN + MAX_DEPTH * NT
M_TS = _M + 0
M_FRAME_LEN = _M + 1
M_CAPLEN = _M + 2
M_LINKTYPE = _M + 3
M_IFACE = _M + 4
M_TS_PREC = _M + 5
M_DEPTH = _M + 6  # number of tunnel layers
M_ERROR = _M + 7  # first error-class event code (decode.events)
M_TRUNC = _M + 8  # 1 when a header was cut off by the capture length
M_KIND = _M + 9  # record kind (records.schema.KIND_*)
M_GENEVE_OFF = _M + 10  # absolute offset of the outermost GENEVE options in buf
M_GENEVE_LEN = _M + 11
M_FILE_OFF = _M + 12  # byte offset of the frame's record in its file (or datagram index)
# --- sFlow (filled by sflow/, -1 for plain packets) --------------------------------------
S_AGENT_VER = _M + 13
S_AGENT_HI = _M + 14
S_AGENT_LO = _M + 15
S_SUB_AGENT = _M + 16
S_SEQ = _M + 17
S_UPTIME = _M + 18
S_SAMPLE_SEQ = _M + 19
S_SOURCE_ID = _M + 20  # source id type << 24 | index (expanded samples: type<<24|index too)
S_IN_IF = _M + 21
S_OUT_IF = _M + 22  # value; see S_OUT_IF_FMT
S_OUT_IF_FMT = _M + 23  # 0 single ifIndex, 1 discarded (value = reason), 2 multiple
S_SAMPLING_RATE = _M + 24
S_SAMPLE_POOL = _M + 25
S_DROPS = _M + 26
S_HDR_PROTO = _M + 27  # sampled header protocol (1 = Ethernet ...)
S_SRC_VLAN = _M + 28  # extended switch
S_DST_VLAN = _M + 29
S_DISCARD_REASON = _M + 30  # drops extension / discarded out_if format
S_TUN_VNI_IN = _M + 31  # extended VNI ingress (0:1029/0:1030 per OVS)
S_TUN_VNI_OUT = _M + 32
S_IN_IF_FMT = _M + 33
S_DGRAM = _M + 34  # index of the datagram within its source (frame index)
M_PAYLOAD = _M + 35  # offset in buf where decoding stopped (payload of the last header)
M_PAYLOAD_END = _M + 36  # end of that payload (after IP/UDP length trimming)
# --- sFlow extended records (sflow/datagram.py) ------------------------------------------
S_NEXT_HOP_VER = _M + 37  # extended router/gateway next hop (0:1002/0:1003)
S_NEXT_HOP_HI = _M + 38
S_NEXT_HOP_LO = _M + 39
S_SRC_MASK = _M + 40  # extended router: source/destination prefix lengths
S_DST_MASK = _M + 41
S_AS = _M + 42  # extended gateway: the router's own AS
S_SRC_AS = _M + 43
S_PEER_AS = _M + 44  # AS of the source peer
S_DST_AS = _M + 45  # last AS of the destination AS path
S_TUN_DIR = _M + 46  # extended tunnel outer header (0:1023..1026): 1 egress, 2 ingress
S_TUN_IPVER = _M + 47
S_TUN_SRC_HI = _M + 48
S_TUN_SRC_LO = _M + 49
S_TUN_DST_HI = _M + 50
S_TUN_DST_LO = _M + 51
S_TUN_PROTO = _M + 52
S_TUN_SPORT = _M + 53
S_TUN_DPORT = _M + 54
S_DECAP_OFF = _M + 55  # extended decapsulate egress/ingress (0:1027/0:1028): inner offset
NSLOTS = _M + 56

def reset_rows(*, sflow: bool) -> list[int]:
    """The slot rows a reused chunk matrix must set back to -1 before each chunk (the
    fused walks, ``decode/fused.py`` and ``sflow/fused.py``); the matrix starts all -1.

    Left out: the tunnel-layer blocks, except the outermost layer's type and VNI (the
    ``encap`` and ``vni`` columns, read for every record): a layer's fields are all
    written when the walk enters it (``walk._enter_tunnel``), and only layers below the
    record's depth (``M_DEPTH``, which is reset) are ever read. Without ``sflow``, also
    the sFlow rows: the packet walk never writes them, so they stay -1. The reset was
    ~18 ns a record for all the rows (144 then)."""
    keep_tun = {tun_slot(0, T_TYPE), tun_slot(0, T_VNI)}
    skip = {tun_slot(k, f) for k in range(MAX_DEPTH) for f in range(NT)} - keep_tun
    if not sflow:
        skip |= set(range(S_AGENT_VER, S_DGRAM + 1)) | set(range(S_NEXT_HOP_VER, NSLOTS))
    return [r for r in range(NSLOTS) if r not in skip]
