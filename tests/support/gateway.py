"""The project's nginx gateway config, rendered for loopback ports and run by a real nginx."""

from __future__ import annotations

import getpass
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.redis_topologies import required_binary
from tests.support.servers import free_port

GATEWAY_CONFIG = Path(__file__).parents[2] / "deploy" / "nginx" / "broker.conf"
# What the shipped config says, and what the tests put in its place.
SHIPPED_UPSTREAMS = ("server broker-1:8000 ", "server broker-2:8000 ")
SHIPPED_LISTEN = "listen 8080;"


def render_gateway_config(upstream_ports: tuple[int, int], listen_port: int) -> str:
    """The shipped config with only the replicas' addresses and the listen port replaced."""
    text = GATEWAY_CONFIG.read_text()
    for shipped, port in zip(SHIPPED_UPSTREAMS, upstream_ports, strict=True):
        assert text.count(shipped) == 1, f"the gateway config no longer says {shipped!r}"
        text = text.replace(shipped, f"server 127.0.0.1:{port} ")
    assert text.count(SHIPPED_LISTEN) == 1, f"the gateway config no longer says {SHIPPED_LISTEN!r}"
    return text.replace(SHIPPED_LISTEN, f"listen 127.0.0.1:{listen_port};")


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
    """A running nginx, its base URL, and the access log lines it wrote to stdout."""

    base_url: str
    process: subprocess.Popen[str]
    access_log: list[str] = field(default_factory=list)


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
def running_gateway(upstream_ports: tuple[int, int]) -> Iterator[Nginx]:
    """nginx with the project's gateway config in front of two loopback ports."""
    nginx = required_binary("nginx", "nginx")
    with tempfile.TemporaryDirectory(prefix="broker-gateway-") as root:
        prefix = Path(root)
        (prefix / "temp").mkdir()
        listen_port = free_port()
        included = prefix / "broker.conf"
        included.write_text(render_gateway_config(upstream_ports, listen_port))
        config_file = prefix / "nginx.conf"
        config_file.write_text(main_config(prefix, included))
        checked = nginx_check(config_file, prefix)
        assert checked.returncode == 0, checked.stderr
        process = subprocess.Popen(
            [nginx, "-p", str(prefix), "-e", str(prefix / "error.log"), "-c", str(config_file),
             "-g", "daemon off;"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        gateway = Nginx(f"http://127.0.0.1:{listen_port}", process)
        reader = threading.Thread(target=_collect, args=(process, gateway.access_log), daemon=True)
        reader.start()
        try:
            _wait_for_port(listen_port, process)
            yield gateway
        finally:
            process.terminate()
            process.wait(timeout=10)
            reader.join(timeout=5)


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
