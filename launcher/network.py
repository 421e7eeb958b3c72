"""Which network interface a multi-node job's collectives use, and a rendezvous no other node can reach.

gloo and NCCL pick an interface by themselves: gloo the address this host's name resolves to (on
Debian-style hosts files, 127.0.1.1), NCCL the first interface that is up, which on a cluster node
may be a management or container network the other nodes cannot reach. Both failures look like a
hang at start-up. So when a job spans several nodes, spangpt names the interface the kernel routes
to the rendezvous (head) address over, in GLOO_SOCKET_IFNAME and NCCL_SOCKET_IFNAME, unless the
user set either (their choice stands, NCCL's syntax such as `^docker0` included).
"""

from __future__ import annotations

import fcntl
import ipaddress
import socket
import struct
from collections.abc import Mapping, MutableMapping

SIOCGIFADDR = 0x8915  # linux/sockios.h: an interface's IPv4 address
INTERFACE_VARIABLES = ("GLOO_SOCKET_IFNAME", "NCCL_SOCKET_IFNAME")


def resolve(host: str) -> str:
    """The IPv4 address `host` resolves to here (an address stays as it is)."""
    return socket.gethostbyname(host)


def is_loopback(address: str) -> bool:
    return ipaddress.ip_address(address).is_loopback


def resolves_to_loopback(host: str) -> bool:
    try:
        return is_loopback(resolve(host))
    except OSError:  # a name this host cannot resolve is no loopback address of its own
        return False


def interface_address(name: str) -> str | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            packed = fcntl.ioctl(probe.fileno(), SIOCGIFADDR, struct.pack("256s", name[:15].encode()))
        except OSError:  # no IPv4 address on it
            return None
    return socket.inet_ntoa(packed[20:24])


def route_to(address: str) -> tuple[str, str]:
    """(interface, local address) this host sends to `address` from: a connected UDP socket's own
    address (nothing is sent), matched against the interfaces' addresses."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect((address, 9))
        local = probe.getsockname()[0]
    for _, name in socket.if_nameindex():
        if interface_address(name) == local:
            return name, local
    raise OSError(f"no interface holds {local}, the address this host sends to {address} from")


def choose_interface(head: str, environ: MutableMapping[str, str]) -> str:
    """Set the collectives' interface towards `head` (the rendezvous host) unless the user chose one;
    returns the start-up line's words for it."""
    chosen = {name: environ[name] for name in INTERFACE_VARIABLES if environ.get(name)}
    if chosen:
        return "network interface as set: " + ", ".join(f"{k}={v}" for k, v in chosen.items())
    address = resolve(head)
    interface, local = route_to(address)
    for name in INTERFACE_VARIABLES:
        environ[name] = interface
    return f"network interface {interface} ({local}), the route to the rendezvous {head} ({address})"


def loopback_rendezvous(head: str, address: str, nodes: int, node_addresses: Mapping[str, str] | None) -> str | None:
    """Why a rendezvous at `address` cannot work for `nodes` nodes, or None if it can.

    A loopback address reaches this host only. That is right where every node is this host (an
    emulated cluster whose nodes all have loopback addresses), and wrong anywhere else: the other
    nodes would wait for a rendezvous on themselves until it times out."""
    if nodes < 2 or not is_loopback(address):
        return None
    if node_addresses and all(resolves_to_loopback(a) for a in node_addresses.values()):
        return None
    return (f"the rendezvous host {head} resolves to {address}, a loopback address, but the job spans {nodes} "
            f"nodes, which cannot reach it there: give the head node an address the others reach (SLURM's "
            f"NodeAddr, or MASTER_ADDR), or fix its hosts-file entry")
