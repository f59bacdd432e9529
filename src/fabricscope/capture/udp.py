"""UDP listener for the live sFlow collector: batched receives into NumPy, exact drops.

* IPv4 and IPv6 sockets (``::`` listens on both where the system allows dual stack),
  ``SO_REUSEPORT`` so several worker processes can each own a socket on the same port
  (the kernel spreads senders across them by a hash of their address and port);
* a receive buffer as large as allowed: ``SO_RCVBUFFORCE`` (root) else ``SO_RCVBUF`` up to
  ``net.core.rmem_max``;
* **batched receives**: ``recvmmsg(2)`` (through ctypes) fills up to ``batch`` datagrams
  per system call straight into slots of a preallocated NumPy buffer (9 KiB slots by
  default: the collector points them at its decode buffer, so datagrams are never copied),
  with their lengths, truncation flags and sender addresses as NumPy columns, no Python
  object per datagram (a ``recv_into`` loop where ``recvmmsg`` is missing);
* **exact kernel drops**: Linux drops a datagram silently when the socket buffer is full
  and counts it in the ``drops`` column of ``/proc/net/udp`` (``udp6``) for that socket,
  found by its inode. ``SO_RXQ_OVFL`` would miss drops after the last datagram read; the
  /proc counter does not.

``sendmmsg(2)`` is wrapped the same way for forwarding and for the load generator.

The message header arrays (``struct mmsghdr``, ``struct iovec``, ``struct sockaddr_in6``)
follow the Linux LP64 layouts (x86-64, arm64)::

    struct mmsghdr {                      struct iovec {
      struct msghdr {                       void  *iov_base;   0
        void         *msg_name;     0       size_t iov_len;    8
        socklen_t     msg_namelen;  8     };                  16
        struct iovec *msg_iov;     16
        size_t        msg_iovlen;  24
        void         *msg_control; 32
        size_t        msg_controllen; 40
        int           msg_flags;   48
      } msg_hdr;
      unsigned int    msg_len;     56
    };                             64
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import select
import socket
import sys
import time
from dataclasses import dataclass

import numpy as np

MSG_DONTWAIT = 0x40
MSG_TRUNC = 0x20
NAME_SIZE = 32  # room for a sockaddr_in6 (28 bytes)
MAX_UDP_PAYLOAD = 65535
#: receive slot: any datagram a 9,216-byte jumbo MTU (the largest of common data-center
#: switches) can carry fits; a larger one is counted truncated and decoded as far as it
#: goes. (16 KiB before: with 8,192-datagram batches that was 128 MiB of slots.)
DEFAULT_SLOT = 9216

MMSGHDR = np.dtype([
    ("name", "<u8"), ("namelen", "<u4"), ("_pad0", "<u4"), ("iov", "<u8"),
    ("iovlen", "<u8"), ("control", "<u8"), ("controllen", "<u8"), ("flags", "<i4"),
    ("_pad1", "<i4"), ("len", "<u4"), ("_pad2", "<u4"),
])
IOVEC = np.dtype([("base", "<u8"), ("len", "<u8")])
assert MMSGHDR.itemsize == 64 and IOVEC.itemsize == 16

_libc: ctypes.CDLL | None = None


def _lib() -> ctypes.CDLL | None:
    global _libc
    if _libc is None and sys.platform.startswith("linux"):
        lib = ctypes.CDLL(None, use_errno=True)
        for fn in ("recvmmsg", "sendmmsg"):
            f = getattr(lib, fn, None)
            if f is None:
                return None
            f.restype = ctypes.c_int
        lib.recvmmsg.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int,
                                 ctypes.c_void_p]
        lib.sendmmsg.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int]
        _libc = lib
    return _libc


def parse_hostport(text: str, default_port: int = 6343) -> tuple[str, int]:
    """``HOST:PORT``, ``[V6]:PORT``, ``HOST`` or ``:PORT`` -> (host, port)."""
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif text.count(":") == 1:
        host, port = text.split(":")
    elif text.count(":") > 1:  # a bare IPv6 address
        host, port = text, ""
    else:
        host, port = text, ""
    if not port:
        p = default_port
    else:
        try:
            p = int(port)
        except ValueError:
            raise ValueError(f"bad port in {text!r}") from None
    if not 0 <= p <= 65535:
        raise ValueError(f"port out of range in {text!r}")
    return host or "0.0.0.0", p


def sockaddr(host: str, port: int) -> tuple[int, bytes, tuple[object, ...]]:
    """-> (family, the raw sockaddr bytes for sendmmsg, the address tuple for sendto)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    fam, _, _, _, addr = infos[0]
    ip = socket.inet_pton(fam, str(addr[0]))
    if fam == socket.AF_INET:
        raw = (socket.AF_INET.to_bytes(2, sys.byteorder) + port.to_bytes(2, "big") + ip
               + bytes(8))
    else:
        raw = (socket.AF_INET6.to_bytes(2, sys.byteorder) + port.to_bytes(2, "big")
               + bytes(4) + ip + bytes(4))
    return int(fam), raw, tuple(addr)


def open_udp_socket(host: str, port: int, *, rcvbuf: int = 256 << 20,
                    reuseport: bool = False) -> socket.socket:
    """A bound UDP socket with the largest receive buffer the system allows."""
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    if fam == socket.AF_INET and host not in ("", "0.0.0.0"):
        with contextlib.suppress(OSError):
            fam = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0][0]
    s = socket.socket(fam, socket.SOCK_DGRAM)
    try:
        if reuseport:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if fam == socket.AF_INET6 and host in ("::", ""):
            with contextlib.suppress(OSError):
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        set_rcvbuf(s, rcvbuf)
        s.bind((host, port))
    except BaseException:
        s.close()
        raise
    return s


SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)


def set_rcvbuf(s: socket.socket, size: int) -> int:
    """Ask for ``size`` bytes of receive buffer (SO_RCVBUFFORCE first: it ignores
    rmem_max when we may); returns what the kernel granted (it doubles the request for its
    bookkeeping, /2 to compare)."""
    if size > 0:
        try:
            s.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, size)
        except OSError:
            with contextlib.suppress(OSError):
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)
    return int(s.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF))


@dataclass
class SocketStats:
    """One socket's line of /proc/net/udp (udp6)."""

    inode: int
    drops: int
    rx_queue: int  # bytes waiting in the receive queue


def socket_stats(sock: socket.socket | int, *, proc: str = "/proc/net") -> SocketStats | None:
    """The kernel's counters for ``sock`` (found by inode), or None when not listed."""
    fd = sock if isinstance(sock, int) else sock.fileno()
    inode = os.fstat(fd).st_ino
    for name in ("udp", "udp6"):
        try:
            with open(os.path.join(proc, name)) as fh:
                next(fh, None)
                for line in fh:
                    parts = line.split()
                    if len(parts) >= 13 and parts[9] == str(inode):
                        rxq = int(parts[4].split(":")[1], 16)
                        return SocketStats(inode=inode, drops=int(parts[12]), rx_queue=rxq)
        except OSError:
            continue
    return None


def softnet_drops(path: str = "/proc/net/softnet_stat") -> int:
    """Packets dropped by every CPU's input backlog (netdev_max_backlog), system-wide: on
    loopback a datagram can be lost there before reaching any socket."""
    try:
        with open(path) as fh:
            return sum(int(line.split()[1], 16) for line in fh if line.strip())
    except OSError:
        return 0


def slot_buffer(nbytes: int) -> np.ndarray:
    """A zeroed uint8 buffer for received datagrams, in anonymous memory advised for
    transparent huge pages (datagrams one slot apart then share 2 MiB pages: no TLB miss
    per datagram when they are decoded)."""
    import mmap

    huge = 2 << 20
    mm = mmap.mmap(-1, nbytes + huge, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    with contextlib.suppress(AttributeError, OSError):
        mm.madvise(mmap.MADV_HUGEPAGE)  # type: ignore[attr-defined]
    raw = np.frombuffer(mm, dtype=np.uint8)
    skip = (-raw.ctypes.data) % huge
    return raw[skip:skip + nbytes]


class MessageArrays:
    """``batch`` slots of ``slot`` bytes with their mmsghdr/iovec/sockaddr arrays. The
    slots are in ``buf`` (own by default; :meth:`aim` points them at another buffer)."""

    def __init__(self, batch: int, slot: int) -> None:
        self.batch = batch
        self.slot = slot
        self.buf = slot_buffer(batch * slot)
        self.names = np.zeros((batch, NAME_SIZE), np.uint8)
        self.iov = np.zeros(batch, IOVEC)
        self._ramp = np.arange(batch, dtype=np.uint64) * np.uint64(slot)
        self.iov["base"] = self.buf.ctypes.data + self._ramp
        self.iov["len"] = slot
        self.hdr = np.zeros(batch, MMSGHDR)
        self.hdr["name"] = self.names.ctypes.data + np.arange(batch, dtype=np.uint64) * NAME_SIZE
        self.hdr["namelen"] = NAME_SIZE
        self.hdr["iov"] = self.iov.ctypes.data + np.arange(batch, dtype=np.uint64) * 16
        self.hdr["iovlen"] = 1

    def aim(self, buf: np.ndarray, first_slot: int) -> int:
        """Receive the next datagrams into ``buf`` (uint8, whole slots), slot
        ``first_slot`` on; -> how many slots are free there (at most ``batch``)."""
        room = min(self.batch, buf.shape[0] // self.slot - first_slot)
        if room > 0:
            base = buf.ctypes.data + first_slot * self.slot
            self.iov["base"][:room] = base + self._ramp[:room]
        return int(max(room, 0))

    def peers(self, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Sender addresses of the first ``n`` messages -> (version, hi, lo) in the
        records' IPv4-mapped form."""
        nm = self.names[:n]
        fam = nm[:, 0].astype(np.int64) | (nm[:, 1].astype(np.int64) << 8)
        if sys.byteorder == "big":
            fam = (nm[:, 0].astype(np.int64) << 8) | nm[:, 1].astype(np.int64)
        v4 = fam == socket.AF_INET
        be = nm[:, 8:24].copy().view(">u8").astype(np.uint64).view(np.int64)
        hi = np.where(v4, 0, be[:, 0])
        a4 = nm[:, 4:8].copy().view(">u4").astype(np.int64)[:, 0]
        lo = np.where(v4, (0xFFFF << 32) | a4, be[:, 1])
        ver = np.where(v4, 4, np.where(fam == socket.AF_INET6, 6, 0))
        # IPv4-mapped IPv6 senders (dual-stack sockets) are IPv4
        mapped = (ver == 6) & (hi == 0) & ((lo >> 32) == 0xFFFF)
        ver = np.where(mapped, 4, ver)
        return ver.astype(np.int64), hi.astype(np.int64), lo.astype(np.int64)


class UdpListener:
    """A bound UDP socket read in batches. ``recv()`` -> number of datagrams now in
    ``msgs`` slots (``lengths``, ``truncated``), 0 on timeout."""

    def __init__(self, host: str, port: int, *, batch: int = 1024,
                 slot: int = DEFAULT_SLOT, rcvbuf: int = 256 << 20,
                 reuseport: bool = False, sock: socket.socket | None = None) -> None:
        self.sock = sock if sock is not None else open_udp_socket(
            host, port, rcvbuf=rcvbuf, reuseport=reuseport)
        self.sock.setblocking(False)
        self.fd = self.sock.fileno()
        self.port = int(self.sock.getsockname()[1])
        self.rcvbuf = int(self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF))
        self.msgs = MessageArrays(batch, slot)
        self.lengths = np.zeros(batch, np.int64)
        self.truncated = np.zeros(batch, np.int64)
        self.ts_ns = 0
        self.received = 0
        self.bytes = 0
        self.calls = 0
        self._lib = _lib()
        self._poll = select.poll()
        self._poll.register(self.fd, select.POLLIN)

    def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for a datagram."""
        try:
            return bool(self._poll.poll(max(0, int(timeout * 1000))))
        except InterruptedError:  # pragma: no cover - PEP 475 retries
            return False

    def recv(self, timeout: float = 0.1, *, into: np.ndarray | None = None,
             slot: int = 0) -> int:
        """Read what is queued (up to ``batch`` datagrams), waiting up to ``timeout``
        seconds for the first one. Datagram k lands in slot k of ``msgs.buf``, or with
        ``into``, in slot ``slot + k`` of that buffer (``msgs.slot`` bytes per slot)."""
        m = self.msgs
        vlen = m.aim(into, slot) if into is not None else m.aim(m.buf, 0)
        if vlen == 0:
            return 0
        n = self._recv_now(vlen, into if into is not None else m.buf, slot)
        if n == 0 and timeout > 0 and self.wait(timeout):
            n = self._recv_now(vlen, into if into is not None else m.buf, slot)
        return n

    def _recv_now(self, vlen: int, buf: np.ndarray, first: int) -> int:
        m = self.msgs
        self.calls += 1
        if self._lib is not None:
            m.hdr["namelen"] = NAME_SIZE
            n = self._lib.recvmmsg(self.fd, m.hdr.ctypes.data, vlen, MSG_DONTWAIT, None)
            if n < 0:
                e = ctypes.get_errno()
                if e in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EINTR):
                    return 0
                raise OSError(e, os.strerror(e))
            self.ts_ns = time.time_ns()
            self.lengths[:n] = m.hdr["len"][:n]
            self.truncated[:n] = (m.hdr["flags"][:n] & MSG_TRUNC) != 0
        else:  # pragma: no cover - non-Linux fallback
            n = 0
            view = memoryview(buf.data)
            while n < vlen:
                k = first + n
                try:
                    ln, _addr = self.sock.recvfrom_into(view[k * m.slot:(k + 1) * m.slot])
                except BlockingIOError:
                    break
                self.lengths[n] = ln
                self.truncated[n] = 0
                n += 1
            self.ts_ns = time.time_ns()
        self.received += n
        self.bytes += int(self.lengths[:n].sum())
        return int(n)

    def stats(self) -> SocketStats | None:
        return socket_stats(self.sock)

    def close(self) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self._poll.unregister(self.fd)
        self.sock.close()


class UdpSender:
    """Send many datagrams per system call (``sendmmsg``) to one address; for forwarding
    and for load generation. Datagrams are slices of a NumPy buffer."""

    def __init__(self, host: str, port: int, *, batch: int = 1024,
                 sndbuf: int = 64 << 20, bind: tuple[str, int] | None = None) -> None:
        fam, raw, self.addr = sockaddr(host, port)
        self.sock = socket.socket(fam, socket.SOCK_DGRAM)
        with contextlib.suppress(OSError):
            self.sock.setsockopt(socket.SOL_SOCKET, getattr(socket, "SO_SNDBUFFORCE", 32),
                                 sndbuf)
        if bind is not None:
            self.sock.bind(bind)
        self.sock.setblocking(False)
        self.fd = self.sock.fileno()
        self.batch = batch
        self.name = np.frombuffer(raw.ljust(NAME_SIZE, b"\0"), np.uint8).copy()
        self.iov = np.zeros(batch, IOVEC)
        self.hdr = np.zeros(batch, MMSGHDR)
        self.hdr["name"] = self.name.ctypes.data
        self.hdr["namelen"] = len(raw)
        self.hdr["iov"] = self.iov.ctypes.data + np.arange(batch, dtype=np.uint64) * 16
        self.hdr["iovlen"] = 1
        self._lib = _lib()
        self.sent = 0
        self.failed = 0

    def send(self, buf: np.ndarray, offset: np.ndarray, length: np.ndarray, *,
             block: bool = True) -> int:
        """Send datagrams ``buf[offset[k] : offset[k] + length[k]]``; -> how many left.
        With ``block``, waits for room in the socket buffer instead of giving up."""
        n = int(offset.shape[0])
        done = 0
        base = buf.ctypes.data
        while done < n:
            k = min(self.batch, n - done)
            if self._lib is None:  # pragma: no cover
                for j in range(done, done + k):
                    o = int(offset[j])
                    self.sock.sendto(buf[o:o + int(length[j])].tobytes(), self.addr)
                r = k
            else:
                self.iov["base"][:k] = base + offset[done:done + k].astype(np.uint64)
                self.iov["len"][:k] = length[done:done + k]
                r = self._lib.sendmmsg(self.fd, self.hdr.ctypes.data, k, MSG_DONTWAIT)
                if r < 0:
                    e = ctypes.get_errno()
                    if e in (errno.EAGAIN, errno.EWOULDBLOCK, errno.ENOBUFS, errno.EINTR):
                        if not block:
                            break
                        select.select([], [self.sock], [], 0.01)
                        continue
                    if e == errno.ECONNREFUSED:  # an ICMP error from an earlier send
                        continue
                    raise OSError(e, os.strerror(e))
            done += r
        self.sent += done
        self.failed += n - done
        return n - done

    def close(self) -> None:
        self.sock.close()
