"""Real Redis topologies on loopback: a three-master Cluster, a Sentinel-watched master, and TLS."""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import redis

from tests.support.required import missing
from tests.support.servers import RedisServer, free_port, start_redis_server

DEADLINE_S = 20.0
CLUSTER_BUS_OFFSET = 10000


def required_binary(name: str, package: str) -> str:
    """The path of a Debian-provided tool; skipped locally, a failure in CI, when missing."""
    binary = shutil.which(name)
    if binary is None:
        missing(f"{name} is not installed (apt-get install {package})")
        raise AssertionError("unreachable: missing() skips or fails")
    return binary


def text(reply: bytes | str) -> str:
    """A reply of a client made without decode_responses (bytes), as text."""
    return reply.decode() if isinstance(reply, bytes) else reply


def free_cluster_port() -> int:
    """A free port whose cluster bus port (port + 10000) is free and valid as well."""
    for _ in range(100):
        port = random.randrange(20000, 50000)
        try:
            with socket.socket() as first, socket.socket() as second:
                first.bind(("127.0.0.1", port))
                second.bind(("127.0.0.1", port + CLUSTER_BUS_OFFSET))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port pair for a cluster node")


def wait_until(condition: Callable[[], bool], what: str, deadline_s: float = DEADLINE_S) -> None:
    """Poll `condition` until it holds, or fail naming `what`."""
    deadline = time.monotonic() + deadline_s
    while True:
        try:
            if condition():
                return
        except (redis.RedisError, OSError):
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.05)


@dataclass
class RedisClusterNodes:
    """A Redis Cluster of masters on loopback, owned by the test run."""

    servers: list[RedisServer]

    @property
    def url(self) -> str:
        """The seed node's URL, as an operator would set REDIS_URL."""
        return f"redis://127.0.0.1:{self.servers[0].port}/0"

    def flushall(self) -> None:
        for server in self.servers:
            server.client().flushall()

    def keys(self) -> list[str]:
        found: list[str] = []
        for server in self.servers:
            found.extend(text(key) for key in server.client().keys("*"))
        return found


@contextmanager
def running_redis_cluster(masters: int = 3) -> Iterator[RedisClusterNodes]:
    """`masters` redis-servers with cluster mode on, joined by `redis-cli --cluster create`."""
    redis_cli = required_binary("redis-cli", "redis-tools")
    with tempfile.TemporaryDirectory(prefix="broker-cluster-") as root, ExitStack() as stack:
        servers = []
        for index in range(masters):
            data_dir = Path(root) / f"node-{index}"
            data_dir.mkdir()
            server = start_redis_server(
                data_dir,
                port=free_cluster_port(),
                extra_args=("--cluster-enabled", "yes", "--cluster-node-timeout", "5000"),
            )
            stack.callback(server.stop)
            servers.append(server)
        addresses = [f"127.0.0.1:{server.port}" for server in servers]
        subprocess.run(
            [redis_cli, "--cluster", "create", *addresses, "--cluster-replicas", "0",
             "--cluster-yes"],
            check=True, capture_output=True, timeout=DEADLINE_S,
        )  # fmt: skip

        def cluster_is_ok() -> bool:
            for server in servers:
                info = server.client().cluster("INFO")
                if info["cluster_state"] != "ok" or int(info["cluster_slots_ok"]) != 16384:
                    return False
            return True

        wait_until(cluster_is_ok, "the cluster to cover every slot")
        yield RedisClusterNodes(servers)


CLUSTER_SLOTS = 16384


@dataclass
class ReplicatedCluster:
    """A Redis Cluster whose every primary has a replica, on loopback, owned by the test run.

    Failovers and resharding move roles and slots, so every question is put to the nodes that
    run now; a node's view is its own CLUSTER SLOTS, and the cluster is settled when they agree.
    """

    servers: list[RedisServer]
    node_timeout_ms: int

    @property
    def url(self) -> str:
        """A seed node's URL, as an operator would set REDIS_URL (any node serves the topology)."""
        return f"redis://127.0.0.1:{self.servers[0].port}/0"

    def running(self) -> list[RedisServer]:
        return [server for server in self.servers if server.process.poll() is None]

    def primaries(self) -> list[RedisServer]:
        return [server for server in self.running() if _role(server) == "master"]

    def replica_of(self, primary: RedisServer) -> RedisServer:
        """The running replica that follows `primary`."""
        for server in self.running():
            replication = server.client().info("replication")
            if replication["role"] == "slave" and int(replication["master_port"]) == primary.port:
                return server
        raise AssertionError(f"no replica follows the primary on port {primary.port}")

    def serving(self, slot: int) -> RedisServer:
        """The primary that a running node names for `slot`."""
        for (first, last), port in _slot_map(self.running()[0]).items():
            if first <= slot <= last:
                return self._on_port(port)
        raise AssertionError(f"no primary serves slot {slot}")

    def settled(self) -> bool:
        """Every running node says the cluster is ok and names the same running primaries."""
        running = self.running()
        views = [_slot_map(server) for server in running]
        if any(view != views[0] for view in views[1:]):
            return False
        if sum(last - first + 1 for first, last in views[0]) != CLUSTER_SLOTS:
            return False
        ports = {server.port: server for server in running}
        if any(port not in ports or _role(ports[port]) != "master" for port in views[0].values()):
            return False
        return all(server.client().cluster("INFO")["cluster_state"] == "ok" for server in running)

    def replicas_in_sync(self) -> bool:
        """Every primary has a replica, and every replica's link to its primary is up."""
        followed = set()
        for server in self.running():
            state = server.client().info("replication")
            if state["role"] == "slave":
                if state["master_link_status"] != "up":
                    return False
                followed.add(int(state["master_port"]))
        return {primary.port for primary in self.primaries()} <= followed

    def wait_settled(self, what: str) -> None:
        wait_until(self.settled, f"every node to agree on the cluster after {what}")

    def fail_over(self, primary: RedisServer) -> RedisServer:
        """A manual failover (CLUSTER FAILOVER on the replica): the primary hands over once the
        replica has every write; the new primary, once every node agrees."""
        replica = self.replica_of(primary)
        replica.client().cluster("FAILOVER")
        wait_until(
            lambda: _role(replica) == "master" and _role(primary) == "slave",
            f"the replica on port {replica.port} to take over",
        )
        self.wait_settled("the manual failover")
        return replica

    def crash(self, primary: RedisServer) -> RedisServer:
        """SIGKILL `primary`; its replica is promoted once the others mark it failed (after the
        node timeout), and is returned once every running node agrees.

        Replication is asynchronous, so a crash may lose what the primary acknowledged in its
        last moments (Redis' own loss, the broker cannot see it): writes are paused first and
        the replica given all of them, then the primary is killed.
        """
        replica = self.replica_of(primary)
        admin = primary.client()
        admin.client_pause(10 * self.node_timeout_ms, all=False)
        offset = int(admin.info("replication")["master_repl_offset"])
        wait_until(
            lambda: int(replica.client().info("replication")["slave_repl_offset"]) >= offset,
            "the replica to have every write of its primary",
        )
        primary.stop()
        promoted = f"the replica on port {replica.port} to be promoted"
        wait_until(lambda: _role(replica) == "master", promoted)
        self.wait_settled("the promotion")
        return replica

    def move_slot(
        self, slot: int, target: RedisServer, between_keys: Callable[[], None] = lambda: None
    ) -> None:
        """Reshard `slot` to `target` as `redis-cli --cluster reshard` does (IMPORTING and
        MIGRATING, MIGRATE, SETSLOT NODE), one key per MIGRATE with `between_keys` run after
        each, so that clients meet the slot half-moved."""
        source = self.begin_moving(slot, target)
        while keys := source.client().cluster("GETKEYSINSLOT", slot, 1):
            self.migrate(source, target, [text(key) for key in keys])
            between_keys()
        self.end_moving(slot, source, target)

    def begin_moving(self, slot: int, target: RedisServer) -> RedisServer:
        """Mark `slot` IMPORTING on `target` and MIGRATING on its primary, which is returned."""
        source = self.serving(slot)
        assert source.port != target.port, f"slot {slot} is already on port {target.port}"
        target.client().cluster("SETSLOT", slot, "IMPORTING", _node_id(source))
        source.client().cluster("SETSLOT", slot, "MIGRATING", _node_id(target))
        return source

    def migrate(self, source: RedisServer, target: RedisServer, keys: list[str]) -> None:
        """Move `keys` (of a slot being moved) from `source` to `target`, atomically each."""
        source.client().migrate("127.0.0.1", target.port, keys, 0, 5000)

    def end_moving(self, slot: int, source: RedisServer, target: RedisServer) -> None:
        """Hand `slot` over to `target`; return once every node agrees."""
        # The new owner first, then the old one, then the rest (as redis-cli orders them).
        others = [p for p in self.primaries() if p.port not in (source.port, target.port)]
        for server in (target, source, *others):
            server.client().cluster("SETSLOT", slot, "NODE", _node_id(target))
        self.wait_settled(f"slot {slot} moved")

    def _on_port(self, port: int) -> RedisServer:
        return next(server for server in self.servers if server.port == port)


def _role(server: RedisServer) -> str:
    """`master` or `slave`, as the server's INFO replication says."""
    return str(server.client().info("replication")["role"])


def _node_id(server: RedisServer) -> str:
    return text(server.client().cluster("MYID"))


def _slot_map(server: RedisServer) -> dict[tuple[int, int], int]:
    """The server's view of the slots: each range to the port of the primary serving it."""
    ranges = server.client().cluster("SLOTS")
    return {(int(first), int(last)): int(primary[1]) for first, last, primary, *_ in ranges}


@contextmanager
def running_replicated_cluster(
    primaries: int = 3, node_timeout_ms: int = 1000
) -> Iterator[ReplicatedCluster]:
    """`primaries` primaries and a replica each, joined by `redis-cli --cluster create
    --cluster-replicas 1`; the short node timeout has a dead primary replaced in seconds."""
    redis_cli = required_binary("redis-cli", "redis-tools")
    with tempfile.TemporaryDirectory(prefix="broker-replicated-") as root, ExitStack() as stack:
        servers = []
        for index in range(2 * primaries):
            data_dir = Path(root) / f"node-{index}"
            data_dir.mkdir()
            server = start_redis_server(
                data_dir,
                port=free_cluster_port(),
                extra_args=(
                    "--cluster-enabled", "yes",
                    "--cluster-node-timeout", str(node_timeout_ms),
                    # Replicas sync at once instead of after the default 5 s diskless delay.
                    "--repl-diskless-sync-delay", "0",
                ),
            )  # fmt: skip
            stack.callback(server.stop)
            servers.append(server)
        addresses = [f"127.0.0.1:{server.port}" for server in servers]
        subprocess.run(
            [redis_cli, "--cluster", "create", *addresses, "--cluster-replicas", "1",
             "--cluster-yes"],
            check=True, capture_output=True, timeout=DEADLINE_S,
        )  # fmt: skip
        cluster = ReplicatedCluster(servers, node_timeout_ms)
        wait_until(
            lambda: cluster.settled() and cluster.replicas_in_sync(),
            "the cluster to cover every slot, each primary with a replica in sync",
        )
        yield cluster


@dataclass
class SentinelGroup:
    """A master, a replica, and one Sentinel watching them under `service_name`."""

    master: RedisServer
    replica: RedisServer
    sentinel_port: int
    sentinel: subprocess.Popen[bytes]
    service_name: str = "broker-master"
    stopped: list[RedisServer] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"redis+sentinel://127.0.0.1:{self.sentinel_port}/{self.service_name}/0"

    def sentinel_client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.sentinel_port, socket_timeout=5)

    def master_port(self) -> int:
        """The port of the master that Sentinel names now (what a client connects to)."""
        address = self.sentinel_client().sentinel_get_master_addr_by_name(self.service_name)
        assert isinstance(address, tuple), f"Sentinel names no master for {self.service_name}"
        return address[1]

    def master_port_in_sentinel_masters(self) -> int:
        """The master's port as SENTINEL MASTER says it: the old one until a failover ends."""
        state = self.sentinel_client().sentinel_master(self.service_name)
        assert isinstance(state, dict), f"Sentinel monitors no {self.service_name}"
        return int(state["port"])

    def replica_is_promotable(self) -> bool:
        # SENTINEL REPLICAS, each replica's state parsed by redis-py (text keys and values).
        replicas = self.sentinel_client().sentinel_slaves(self.service_name)
        return any(
            replica["flags"] == "slave" and replica["master-link-status"] == "ok"
            for replica in replicas
        )

    def fail_over(self) -> None:
        """Promote the replica as Sentinel does when the master fails; wait until it is done."""
        old_port = self.master_port()
        old, promoted = (
            (self.master, self.replica)
            if old_port == self.master.port
            else (self.replica, self.master)
        )
        # Writes acknowledged before the switch are on the replica (replication is async).
        old.client().wait(1, 5000)
        wait_until(self.replica_is_promotable, "Sentinel to see the replica in sync")
        self.sentinel_client().sentinel_failover(self.service_name)
        wait_until(lambda: self.master_port() == promoted.port, "Sentinel to promote the replica")
        wait_until(
            lambda: promoted.client().info("replication")["role"] == "master",
            "the promoted replica to accept writes",
        )
        # Sentinel demotes the old master at its next 10 s check; send the same REPLICAOF now.
        old.client().replicaof("127.0.0.1", promoted.port)
        wait_until(
            lambda: old.client().info("replication")["role"] == "slave",
            "the old master to become a replica",
        )
        # Until the failover ends, SENTINEL MASTERS (what clients read) still names the old one.
        wait_until(
            lambda: self.master_port_in_sentinel_masters() == promoted.port,
            "Sentinel to end the failover",
        )


@contextmanager
def running_sentinel_group() -> Iterator[SentinelGroup]:
    """A master and its replica on loopback, watched by a real redis-server in Sentinel mode."""
    redis_server = required_binary("redis-server", "redis-server")
    with tempfile.TemporaryDirectory(prefix="broker-sentinel-") as root, ExitStack() as stack:
        directories = [Path(root) / name for name in ("master", "replica", "sentinel")]
        for directory in directories:
            directory.mkdir()
        # Replicas sync at once instead of after the default 5 s diskless-sync delay.
        no_delay = ("--repl-diskless-sync-delay", "0")
        master = start_redis_server(directories[0], extra_args=no_delay)
        stack.callback(master.stop)
        replica = start_redis_server(
            directories[1], extra_args=(*no_delay, "--replicaof", "127.0.0.1", str(master.port))
        )
        stack.callback(replica.stop)
        wait_until(
            lambda: replica.client().info("replication")["master_link_status"] == "up",
            "the replica to sync",
        )
        sentinel_port = free_port()
        config = directories[2] / "sentinel.conf"
        config.write_text(
            f"port {sentinel_port}\nbind 127.0.0.1\ndir {directories[2]}\n"
            f"sentinel monitor broker-master 127.0.0.1 {master.port} 1\n"
            "sentinel down-after-milliseconds broker-master 2000\n"
            "sentinel failover-timeout broker-master 10000\n"
        )
        process = subprocess.Popen(
            [redis_server, str(config), "--sentinel"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        stack.callback(_stop, process)
        group = SentinelGroup(master, replica, sentinel_port, process)
        wait_until(lambda: group.master_port() == master.port, "Sentinel to know the master")
        wait_until(group.replica_is_promotable, "Sentinel to see the replica in sync")
        yield group


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.kill()
        process.wait(timeout=10)


@dataclass
class TlsRedis:
    """A redis-server that speaks only TLS, with a password, and the CA that signed its cert."""

    port: int
    password: str
    ca_file: Path

    @property
    def url(self) -> str:
        return f"rediss://:{self.password}@127.0.0.1:{self.port}/0?ssl_ca_certs={self.ca_file}"


def make_certificates(directory: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate for 127.0.0.1 signed by it: (ca, cert, key)."""
    openssl = required_binary("openssl", "openssl")
    ca_key, ca_crt = directory / "ca.key", directory / "ca.crt"
    key, csr, crt = directory / "server.key", directory / "server.csr", directory / "server.crt"
    extensions = directory / "san.cnf"
    extensions.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    commands = [
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca_key,
         "-out", ca_crt, "-days", "1", "-subj", "/CN=broker-test-ca"],
        [openssl, "req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr,
         "-subj", "/CN=localhost"],
        [openssl, "x509", "-req", "-in", csr, "-CA", ca_crt, "-CAkey", ca_key,
         "-CAcreateserial", "-out", crt, "-days", "1", "-extfile", extensions],
    ]  # fmt: skip
    for command in commands:
        subprocess.run([str(part) for part in command], check=True, capture_output=True)
    return ca_crt, crt, key


@contextmanager
def running_tls_redis(password: str) -> Iterator[TlsRedis]:
    redis_server = required_binary("redis-server", "redis-server")
    with tempfile.TemporaryDirectory(prefix="broker-tls-redis-") as root:
        directory = Path(root)
        ca_file, cert_file, key_file = make_certificates(directory)
        port = free_port()
        process = subprocess.Popen(
            [redis_server, "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
             "--tls-cert-file", str(cert_file), "--tls-key-file", str(key_file),
             "--tls-ca-cert-file", str(ca_file), "--tls-auth-clients", "no",
             "--requirepass", password, "--save", "", "--appendonly", "no", "--dir", root],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            server = TlsRedis(port, password, ca_file)
            client = redis.Redis.from_url(server.url, socket_timeout=5)
            wait_until(lambda: bool(client.ping()), "the TLS redis-server to answer")
            client.close()
            yield server
        finally:
            _stop(process)
