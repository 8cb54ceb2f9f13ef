"""A network that vanishes mid-submit: the client errors within seconds instead of hanging.

A real blackhole, not a simulation: the client runs in its own network namespace, joined to
this one by a veth pair; a TCP proxy here forwards to the test server. Setting the host's end
of the pair down silently drops every packet the client sends, exactly like a pulled cable or
a Wi-Fi that went away: no RST, no ICMP, nothing ACKed. (A userspace proxy that merely stops
forwarding cannot do this: the kernel keeps ACKing, so TCP never notices; that is why this test
needs a namespace.)

While a statement waits for its answer, unacknowledged data is in flight, so TCP keepalives do
not apply; `tcp_user_timeout` ends the connection. Reconnecting then meets `connect_timeout`.
The test shortens both through the URL (the defaults, 30 s and 10 s, are checked in
test_postgres_resilience.py) to stay quick. Needs root and iproute2 (`ip netns`); skipped
with the reason otherwise.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from core.store import open_store
from tests.postgres import PostgresServer
from tests.tcp_proxy import TcpProxy

from .factories import create_test_run

REPO_ROOT = Path(__file__).resolve().parents[3]
USER_TIMEOUT_MS = 3000  # tcp_user_timeout for this test (the default is 30 000)
CONNECT_TIMEOUT_S = 3  # connect_timeout for this test (the default is 10)
SLACK_S = 5.0  # scheduling and retransmission-timer granularity on a busy 2-core machine

CLIENT = """
import json, sys, time
from core.store import DatabaseUnavailable, Store, make_engine
from tests.core.store.factories import METRICS

store = Store(make_engine(sys.argv[1]))
worker = store.register_worker("netns", "h", "cpu")
lease = store.claim(worker)
report = {}
started = None
try:
    with store.session():  # the connection is checked out (and pinged) while the network is up
        print("ready", flush=True)
        sys.stdin.readline()  # the test takes the network away now
        started = time.monotonic()
        store.submit(lease, bytes(4 << 20), "fp32", 4, METRICS, 0.1)
    report["submit"] = "stored"
except DatabaseUnavailable as exc:
    report["submit"] = "DatabaseUnavailable: " + str(exc)
report["submit_s"] = time.monotonic() - started
started = time.monotonic()
try:
    store.heartbeat(lease)  # a new connection: the network is still gone
    report["reconnect"] = "connected"
except DatabaseUnavailable as exc:
    report["reconnect"] = "DatabaseUnavailable: " + str(exc)
report["reconnect_s"] = time.monotonic() - started
print(json.dumps(report), flush=True)
"""


@dataclass(frozen=True)
class Namespace:
    name: str
    host_link: str  # this namespace's end of the veth pair
    host_ip: str
    client_ip: str
    client_link: str  # the client's end of the pair, inside the namespace


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=30)


@pytest.fixture
def netns() -> Iterator[Namespace]:
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("needs root and iproute2 (`ip netns`) to build a real network blackhole")
    tag = os.getpid() % 100_000
    ns = Namespace(
        f"gf-{tag}", f"gfh{tag}", f"10.213.{tag % 250}.1", f"10.213.{tag % 250}.2", f"gfc{tag}"
    )
    try:
        _ip("netns", "add", ns.name)
    except subprocess.CalledProcessError as error:
        pytest.skip(f"cannot create a network namespace here: {error.stderr.strip()}")
    try:
        _ip(
            "link",
            "add",
            ns.host_link,
            "type",
            "veth",
            "peer",
            "name",
            f"gfc{tag}",
            "netns",
            ns.name,
        )
        _ip("addr", "add", f"{ns.host_ip}/30", "dev", ns.host_link)
        _ip("link", "set", ns.host_link, "up")
        _ip("-n", ns.name, "addr", "add", f"{ns.client_ip}/30", "dev", f"gfc{tag}")
        _ip("-n", ns.name, "link", "set", f"gfc{tag}", "up")
        _ip("-n", ns.name, "link", "set", "lo", "up")
        # A fixed neighbour entry: with the cable pulled, ARP cannot fail fast ("no route to
        # host"), so a new connection's SYN vanishes too and only connect_timeout ends it.
        mac = Path(f"/sys/class/net/{ns.host_link}/address").read_text().strip()
        _ip("-n", ns.name, "neigh", "replace", ns.host_ip, "lladdr", mac, "dev", f"gfc{tag}",
            "nud", "permanent")  # fmt: skip
        yield ns
    finally:
        subprocess.run(["ip", "link", "del", ns.host_link], capture_output=True, timeout=30)
        subprocess.run(["ip", "netns", "del", ns.name], capture_output=True, timeout=30)


@pytest.mark.slow
def test_a_vanished_network_errors_within_seconds(
    netns: Namespace, postgres_server: PostgresServer, pg_database: str
) -> None:
    url = postgres_server.database_url(pg_database)
    store = open_store(url, create=True)
    create_test_run(store, units=1)
    store.dispose()
    with TcpProxy((postgres_server.host, postgres_server.port), listen_host=netns.host_ip) as proxy:
        client_url = (
            url.replace(
                f"@{postgres_server.host}:{postgres_server.port}/", f"@{proxy.host}:{proxy.port}/"
            )
            + f"?tcp_user_timeout={USER_TIMEOUT_MS}&connect_timeout={CONNECT_TIMEOUT_S}"
        )
        client = subprocess.Popen(
            ["ip", "netns", "exec", netns.name, sys.executable, "-c", CLIENT, client_url],
            cwd=REPO_ROOT,
            env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert client.stdout and client.stdin and client.stderr
            assert client.stdout.readline().strip() == "ready", client.stderr.read()
            _ip("link", "set", netns.host_link, "down")  # the cable is pulled
            client.stdin.write("go\n")
            client.stdin.flush()
            out, err = client.communicate(timeout=60)  # a hang fails here
        finally:
            if client.poll() is None:
                client.kill()
                client.wait()
    assert out.strip(), f"the client printed no report: {err}"
    report: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    assert report["submit"].startswith("DatabaseUnavailable"), report
    assert report["submit_s"] < USER_TIMEOUT_MS / 1000 + SLACK_S, report
    assert report["reconnect"].startswith("DatabaseUnavailable"), report
    assert report["reconnect_s"] < 2 * CONNECT_TIMEOUT_S + SLACK_S, report
