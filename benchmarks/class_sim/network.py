"""Network shaping for the class simulation: volunteers in network namespaces behind veth
pairs, shaped with Linux `tc` (root needed).

- `none`: one namespace for every volunteer, a veth pair into it, no shaping.
- `lan`: the same, with the server's side of the link limited to 1 Gbit/s each way (tbf), so
  all volunteers share one school LAN uplink.
- `home`: one namespace per volunteer, each link 50 Mbit/s down and 10 Mbit/s up (tbf).

Volunteer threads enter their namespace with setns(2), which is per thread on Linux; threads
they start (heartbeats, uploads) inherit it. The server listens on the root side's address.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

CLONE_NEWNET = 0x40000000
NETWORKS = ("none", "lan", "home")
PREFIX = "gfsim"
LOCK_FILE = Path(tempfile.gettempdir()) / "ganfriends-class-sim.lock"  # one simulation at a time


@dataclass
class Topology:
    """Where each volunteer connects from and to, and which links carry the server's egress."""

    server_address: str  # the address volunteers connect to
    namespaces: list[str]  # per volunteer
    server_links: list[str] = field(default_factory=list)  # root-side veths (egress = tx)

    def egress_bytes(self) -> int:
        return sum(
            int(Path(f"/sys/class/net/{link}/statistics/tx_bytes").read_text())
            for link in self.server_links
        )


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


def _tc(*args: str) -> None:
    subprocess.run(["tc", *args], check=True, capture_output=True)


def _shape(device: str, rate: str, netns: str | None = None) -> None:
    prefix = ["ip", "netns", "exec", netns] if netns else []
    subprocess.run(
        [*prefix, "tc", "qdisc", "replace", "dev", device, "root", "tbf", "rate", rate,
         "burst", "256kb", "latency", "50ms"],
        check=True,
        capture_output=True,
    )  # fmt: skip


def _pair(index: int, netns: str, subnet: str, down: str | None, up: str | None) -> str:
    outside, inside = f"{PREFIX}o{index}", f"{PREFIX}i{index}"
    _ip("netns", "add", netns)
    _ip("link", "add", outside, "type", "veth", "peer", "name", inside)
    _ip("link", "set", inside, "netns", netns)
    _ip("addr", "add", f"{subnet}.1/24", "dev", outside)
    _ip("link", "set", outside, "up")
    _ip("-n", netns, "addr", "add", f"{subnet}.2/24", "dev", inside)
    _ip("-n", netns, "link", "set", inside, "up")
    _ip("-n", netns, "link", "set", "lo", "up")
    if down:
        _shape(outside, down)  # server → volunteer
    if up:
        _shape(inside, up, netns)  # volunteer → server
    return outside


@contextlib.contextmanager
def topology(network: str, volunteers: int) -> Iterator[Topology]:
    """Build the namespaces and links for `volunteers`; torn down afterwards."""
    if network not in NETWORKS:
        raise SystemExit(f"--network must be one of {', '.join(NETWORKS)}, not {network!r}")
    if os.geteuid() != 0:  # before the lock, whose file a root simulation left behind
        raise SystemExit("the class simulation shapes its network with ip/tc: run it as root")
    with _alone():
        teardown()
        try:
            yield from _built(network, volunteers)
        finally:
            teardown()


@contextlib.contextmanager
def _alone() -> Iterator[None]:
    """Hold this machine's class-simulation lock, or SystemExit: the namespaces have fixed
    names, so a second simulation's set-up would tear down this one's, and its volunteers
    would wait on dead connections for ever."""
    with LOCK_FILE.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SystemExit(
                "another class simulation is running on this machine (their network namespaces "
                "would collide): wait for it to finish"
            ) from None
        yield


def _built(network: str, volunteers: int) -> Iterator[Topology]:
    """Make the links of `network` and yield them (`topology` tears them down)."""
    if network == "home":
        links = [
            _pair(i, f"{PREFIX}{i}", f"10.78.{i}", "50mbit", "10mbit") for i in range(volunteers)
        ]
        names = [f"{PREFIX}{i}" for i in range(volunteers)]
        # Each volunteer reaches the server at the root side of its own link.
        yield _HomeTopology(names, links)
    else:
        rate = "1gbit" if network == "lan" else None
        link = _pair(0, f"{PREFIX}0", "10.77.0", rate, rate)
        yield Topology("10.77.0.1", [f"{PREFIX}0"] * volunteers, [link])


class _HomeTopology(Topology):
    def __init__(self, names: list[str], links: list[str]) -> None:
        super().__init__("", names, links)

    def address_of(self, index: int) -> str:
        return f"10.78.{index}.1"


def server_address(topo: Topology, index: int) -> str:
    """The address volunteer `index` connects to."""
    return topo.address_of(index) if isinstance(topo, _HomeTopology) else topo.server_address


def teardown() -> None:
    """Remove every namespace and link an earlier simulation left."""
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    for line in listed.splitlines():
        name = line.split()[0] if line.split() else ""
        if name.startswith(PREFIX):
            subprocess.run(["ip", "netns", "delete", name], capture_output=True)
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    for line in links.splitlines():
        name = line.split(":")[1].strip().split("@")[0] if ":" in line else ""
        if name.startswith(f"{PREFIX}o"):
            subprocess.run(["ip", "link", "delete", name], capture_output=True)


def enter(netns: str) -> None:
    """Move the calling thread (only it) into network namespace `netns`."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(f"/run/netns/{netns}", os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns into {netns} failed")
    finally:
        os.close(fd)
