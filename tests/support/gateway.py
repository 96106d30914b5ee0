"""The shipped nginx gateway config, run by a real nginx in front of replicas on loopback.

A test changes three lines of the shipped file, and only those (`render_gateway_config`): the
DNS server, the replicas' port and the listen port. The replicas keep their shipped name,
`broker`: a stub DNS server answers it with REPLICA_ADDRESSES, as compose's DNS answers a
service's name with the address of each of its replicas.
"""

from __future__ import annotations

import getpass
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.redis_topologies import required_binary
from tests.support.servers import free_port
from tests.support.stub_dns import running_stub_dns

GATEWAY_CONFIG = Path(__file__).parents[2] / "deploy" / "nginx" / "broker.conf"
# What the shipped config says on the lines a test changes.
SHIPPED_RESOLVER = "resolver 127.0.0.11 valid=10s ipv6=off;"
SHIPPED_REPLICAS = "set $broker_replicas broker:8000;"
SHIPPED_LISTEN = "listen 8080;"
REPLICAS_NAME = "broker"
# Two replicas on one port at two addresses, as compose runs them: the gateway proxies to one
# name and one port.
REPLICA_ADDRESSES = ("127.0.2.1", "127.0.2.2")


def render_gateway_config(dns_port: int, replica_port: int, listen_port: int) -> str:
    """The shipped config, with this machine's DNS server, replicas' port and listen port."""
    for_this_machine = {
        SHIPPED_RESOLVER: f"resolver 127.0.0.1:{dns_port} valid=10s ipv6=off;",
        SHIPPED_REPLICAS: f"set $broker_replicas {REPLICAS_NAME}:{replica_port};",
        SHIPPED_LISTEN: f"listen 127.0.0.1:{listen_port};",
    }
    text = GATEWAY_CONFIG.read_text()
    for shipped, replacement in for_this_machine.items():
        assert text.count(shipped) == 1, f"the gateway config no longer says {shipped!r}"
        text = text.replace(shipped, replacement)
    return text


def free_replica_port() -> int:
    """A port free on every one of REPLICA_ADDRESSES."""
    for _ in range(20):
        port = free_port()
        try:
            for address in REPLICA_ADDRESSES:
                with socket.socket() as probe:
                    probe.bind((address, port))
        except OSError:
            continue
        return port
    raise RuntimeError(f"no port is free on all of {REPLICA_ADDRESSES}")


def main_config(prefix: Path, included: Path) -> str:
    """What the nginx image's own nginx.conf provides, with every path under `prefix`."""
    temp = prefix / "temp"
    return f"""
user {getpass.getuser()};
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 256; }}
http {{
    client_body_temp_path {temp}/body;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;
    include {included};
}}
"""


@dataclass
class Nginx:
    """A running nginx, its base URL, the access log lines it wrote to stdout, its error log."""

    base_url: str
    process: subprocess.Popen[str]
    error_log_file: Path
    access_log: list[str] = field(default_factory=list)

    def error_log(self) -> str:
        """What nginx has written to its error log so far."""
        return self.error_log_file.read_text(encoding="utf-8", errors="replace")


def nginx_check(config_file: Path, prefix: Path) -> subprocess.CompletedProcess[str]:
    """`nginx -t` on a config, as an operator runs it before a reload."""
    nginx = required_binary("nginx", "nginx")
    return subprocess.run(
        [nginx, "-t", "-p", str(prefix), "-e", str(prefix / "error.log"), "-c", str(config_file)],
        capture_output=True,
        text=True,
        timeout=30,
    )


@contextmanager
def running_gateway(
    replica_port: int, edit_config: Callable[[str], str] | None = None
) -> Iterator[Nginx]:
    """nginx with the shipped config in front of REPLICA_ADDRESSES on `replica_port`.

    `edit_config` changes the rendered config further, for a benchmark only (tests run the
    shipped file as it is).
    """
    nginx = required_binary("nginx", "nginx")
    with ExitStack() as stack:
        dns_port = stack.enter_context(running_stub_dns({REPLICAS_NAME: REPLICA_ADDRESSES}))
        prefix = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="broker-gateway-")))
        (prefix / "temp").mkdir()
        listen_port = free_port()
        included = prefix / "broker.conf"
        rendered = render_gateway_config(dns_port, replica_port, listen_port)
        included.write_text(edit_config(rendered) if edit_config else rendered)
        config_file = prefix / "nginx.conf"
        config_file.write_text(main_config(prefix, included))
        checked = nginx_check(config_file, prefix)
        assert checked.returncode == 0, checked.stderr
        process = subprocess.Popen(
            [nginx, "-p", str(prefix), "-e", str(prefix / "error.log"), "-c", str(config_file),
             "-g", "daemon off;"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        gateway = Nginx(f"http://127.0.0.1:{listen_port}", process, prefix / "error.log")
        reader = threading.Thread(target=_collect, args=(process, gateway.access_log), daemon=True)
        reader.start()
        try:
            _wait_for_port(listen_port, process)
            yield gateway
        finally:
            process.terminate()
            process.wait(timeout=10)
            reader.join(timeout=5)
            assert process.stdout is not None
            process.stdout.close()


def _collect(process: subprocess.Popen[str], lines: list[str]) -> None:
    assert process.stdout is not None
    for line in process.stdout:
        lines.append(line.rstrip("\n"))


def _wait_for_port(port: int, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 10
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("nginx did not start") from None
            time.sleep(0.02)
