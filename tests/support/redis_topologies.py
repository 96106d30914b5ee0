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
            found.extend(key.decode() for key in server.client().keys("*"))
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
        _host, port = self.sentinel_client().execute_command(
            "SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.service_name
        )
        return int(port)

    def replica_is_promotable(self) -> bool:
        replicas = self.sentinel_client().execute_command("SENTINEL", "REPLICAS", self.service_name)
        return any(
            replica[b"flags"] == b"slave" and replica[b"master-link-status"] == b"ok"
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
        old.client().execute_command("WAIT", 1, 5000)
        wait_until(self.replica_is_promotable, "Sentinel to see the replica in sync")
        self.sentinel_client().execute_command("SENTINEL", "FAILOVER", self.service_name)
        wait_until(lambda: self.master_port() == promoted.port, "Sentinel to promote the replica")
        wait_until(
            lambda: promoted.client().info("replication")["role"] == "master",
            "the promoted replica to accept writes",
        )
        # Sentinel demotes the old master at its next 10 s check; send the same REPLICAOF now.
        old.client().execute_command("REPLICAOF", "127.0.0.1", promoted.port)
        wait_until(
            lambda: old.client().info("replication")["role"] == "slave",
            "the old master to become a replica",
        )
        # Until the failover ends, SENTINEL MASTERS (what clients read) still names the old one.
        wait_until(
            lambda: (
                int(self.sentinel_client().sentinel_master(self.service_name)["port"])
                == promoted.port
            ),
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
