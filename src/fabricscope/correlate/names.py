"""Names for raw identities, from the inventory valid at a time, with raw fallbacks."""

from __future__ import annotations

from bisect import bisect_right
from datetime import datetime
from typing import TYPE_CHECKING, Any

from fabricscope.records.present import ip_str

if TYPE_CHECKING:
    from fabricscope.inventory import Inventory


def _text(ip: bytes | str | None) -> str | None:
    if ip is None:
        return None
    return ip if isinstance(ip, str) else ip_str(ip)


class Namer:
    """Resolves outer IPs to hosts, agents to devices, ifIndexes to interfaces and inner
    IPs to endpoints/tenants. Without an inventory every answer is the raw identity."""

    def __init__(self, inventory: Inventory | None) -> None:
        self.inv = inventory
        self._cache: dict[tuple[Any, ...], Any] = {}
        self._bounds: list[datetime] | None = None

    def epoch(self, at: datetime) -> int:
        """The number of inventory change times at or before ``at``: every lookup gives
        the same answer for two times of the same epoch (facts change validity only at
        change times), so answers are memoised per epoch, not per instant."""
        if self.inv is None:
            return 0
        if self._bounds is None:
            self._bounds = self.inv.change_times()
        return bisect_right(self._bounds, at)

    def _memo(self, key: tuple[Any, ...], fn: Any) -> Any:
        if key not in self._cache:
            self._cache[key] = fn()
        return self._cache[key]

    # hosts ---------------------------------------------------------------------------
    def host(self, outer_ip: bytes | str | None, at: datetime) -> str | None:
        ip = _text(outer_ip)
        if ip is None:
            return None

        def look() -> str:
            if self.inv is not None:
                h = self.inv.host_by_tunnel_ip(ip, at) or self.inv.host_by_ip(ip, at)
                if h is not None:
                    return h.name
            return ip

        return str(self._memo(("host", ip, self.epoch(at)), look))

    def host_known(self, outer_ip: bytes | str | None, at: datetime) -> bool:
        ip = _text(outer_ip)
        return ip is not None and self.host(ip, at) != ip

    # devices and interfaces ---------------------------------------------------------
    def device(self, agent: bytes | str | None, at: datetime) -> str | None:
        ip = _text(agent)
        if ip is None:
            return None

        def look() -> str:
            if self.inv is not None:
                d = self.inv.device_by_agent(ip, at)
                if d is not None:
                    return d.name
            return ip

        return str(self._memo(("dev", ip, self.epoch(at)), look))

    def interface(self, agent: bytes | str | None, ifindex: int | None, at: datetime
                  ) -> str | None:
        ip = _text(agent)
        if ip is None or ifindex is None:
            return None
        if ifindex == 0x3FFFFFFF:
            return "internal"

        def look() -> str:
            if self.inv is not None:
                di = self.inv.interface(ip, int(ifindex), at)
                if di is not None:
                    return di.interface.name
            return f"{ip}:{ifindex}"

        return str(self._memo(("if", ip, ifindex, self.epoch(at)), look))

    def agent_of_device(self, device: str, at: datetime) -> str | None:
        """The agent address of a device given by name or by raw agent IP."""
        if self.inv is not None:
            d = self.inv.device(device, at)
            if d is not None:
                return d.agent
        try:
            from fabricscope.records.present import ip_bytes

            ip_bytes(device)
            return device
        except ValueError:
            return None

    def ifindex_of(self, device: str, interface: str, at: datetime) -> int | None:
        """ifIndex of a device interface given by name, by number, or as ``agent:N``."""
        tail = interface.rsplit(":", 1)[-1]
        if tail.isdigit():
            return int(tail)
        if self.inv is not None:
            d = self.inv.device(device, at)
            if d is None:
                agent = self.agent_of_device(device, at)
                d = self.inv.device_by_agent(agent, at) if agent else None
            if d is not None:
                itf = d.interface(interface)
                if itf is not None:
                    return itf.ifindex
        return None

    # endpoints -----------------------------------------------------------------------
    def endpoint(self, inner_ip: bytes | str | None, vni: int | None, at: datetime
                 ) -> dict[str, Any]:
        """``ip``, ``endpoint``, ``tenant``, ``host``, ``network`` of an inner address
        (a fresh dict each call: callers may keep or change it)."""
        key = ("ep", inner_ip, vni, self.epoch(at))
        hit = self._cache.get(key)
        if hit is None:
            hit = self._cache[key] = self._endpoint(inner_ip, vni, at)
        return dict(hit)

    def _endpoint(self, inner_ip: bytes | str | None, vni: int | None, at: datetime
                  ) -> dict[str, Any]:
        ip = _text(inner_ip)
        out: dict[str, Any] = {"ip": ip, "endpoint": None, "tenant": None, "host": None,
                               "network": None}
        if ip is None or self.inv is None:
            return out
        e = self.inv.endpoint_by_ip(ip, vni, at) if vni is not None else None
        if e is None:
            e = self.inv.endpoint_by_ip(ip, None, at)
        if e is not None:
            out["endpoint"] = e.name
            out["tenant"] = self.inv.tenant_of(e, at)
            out["host"] = e.host
            out["network"] = e.network
        elif vni is not None:
            net = self.inv.network_by_vni(vni, at)
            if net is not None:
                out["tenant"] = net.tenant
                out["network"] = net.name
        return out

    def network_of_vni(self, vni: int | None, at: datetime) -> str | None:
        if vni is None or self.inv is None:
            return None
        net = self.inv.network_by_vni(vni, at)
        return net.name if net is not None else None

    def tenant_of_vni(self, vni: int | None, at: datetime) -> str | None:
        if vni is None or self.inv is None:
            return None
        net = self.inv.network_by_vni(vni, at)
        return net.tenant if net is not None else None

    def vnfs_on_host(self, host: str, at: datetime) -> list[str]:
        """VNFs with a port on ``host`` at ``at``."""
        if self.inv is None:
            return []
        names: list[str] = []
        for e in self.inv.endpoints_on_host(host, at):
            v = self.inv.vnf_of_endpoint(e.name, at)
            if v is not None and v.name not in names:
                names.append(v.name)
        return names
