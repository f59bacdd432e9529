"""The real fabric lab: network namespaces, Open vSwitch leaf-spine switches exporting sFlow,
Linux VXLAN hypervisors, two tenants with overlapping addresses, a router and a firewall VNF.

- ``plan``: the topology as pure data (unit-tested without root)
- ``commands``: the plan as command steps (``lab up --dry-run`` prints them)
- ``state``: the journal in the run directory that makes ``lab down`` crash-safe
- ``executor``: runs the steps, starts the lab's own OVS, reads counters, tears down
- ``traffic``: ``lab traffic`` and its ground truth from OVS's own counters
- ``inventory``: the lab's inventory file, with validity times
- ``verify``: tshark- and fabricscope-based checks of a run's sFlow against its ground truth
- ``udpgen``: tiny UDP sender/sink/gratuitous-ARP helpers run inside the namespaces

See docs/lab.md.
"""
