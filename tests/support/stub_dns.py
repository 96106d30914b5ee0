"""A DNS server on loopback that names a few hosts, as compose's DNS names a service's replicas.

nginx's `resolver` reads no /etc/hosts: a test that sends the shipped gateway config to a host
name needs a DNS server of its own. This one answers A queries over UDP, one name to several
addresses (all of them in each answer, like Docker's DNS for a scaled service), and NXDOMAIN for
any other name.
"""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

HEADER = struct.Struct("!HHHHHH")  # id, flags, questions, answers, authority, additional
QUESTION_TAIL = struct.Struct("!HH")  # type, class
TYPE_A = 1
CLASS_IN = 1
# A pointer (two top bits set) to the question's name, which starts right after the header.
NAME_IN_QUESTION = 0xC000 | HEADER.size
RECORD_A = struct.Struct("!HHHIH4s")  # name pointer, type, class, TTL, length, address
ANSWER_TTL_S = 5
FLAG_RESPONSE = 0x8000
FLAG_RECURSION_AVAILABLE = 0x0080
# What a response echoes of a query's flags: its opcode and "recursion desired".
FLAGS_ECHOED = 0x7900
RCODE_NXDOMAIN = 3


def _question_name(message: bytes) -> tuple[str, int]:
    """The question's name, lower case, and the offset just after it."""
    labels = []
    offset = HEADER.size
    while (length := message[offset]) != 0:
        labels.append(message[offset + 1 : offset + 1 + length].decode("ascii"))
        offset += 1 + length
    return ".".join(labels).lower(), offset + 1


def dns_answer(query: bytes, addresses_by_name: Mapping[str, Sequence[str]]) -> bytes | None:
    """The response to one query; None for a message that is not a one-question query."""
    try:
        ident, flags, questions, *_ = HEADER.unpack_from(query)
        name, name_end = _question_name(query)
        query_type, _ = QUESTION_TAIL.unpack_from(query, name_end)
    except (struct.error, IndexError, UnicodeDecodeError):
        return None
    if flags & FLAG_RESPONSE or questions != 1:
        return None
    addresses = addresses_by_name.get(name)
    records = [
        RECORD_A.pack(NAME_IN_QUESTION, TYPE_A, CLASS_IN, ANSWER_TTL_S, 4, socket.inet_aton(a))
        for a in (addresses or ()) if query_type == TYPE_A
    ]  # fmt: skip
    rcode = RCODE_NXDOMAIN if addresses is None else 0
    response_flags = FLAG_RESPONSE | FLAG_RECURSION_AVAILABLE | (flags & FLAGS_ECHOED) | rcode
    header = HEADER.pack(ident, response_flags, 1, len(records), 0, 0)
    question = query[HEADER.size : name_end + QUESTION_TAIL.size]
    return header + question + b"".join(records)


def _serve(
    server: socket.socket, addresses_by_name: Mapping[str, Sequence[str]], stop: threading.Event
) -> None:
    while not stop.is_set():
        try:
            query, client = server.recvfrom(512)
        except TimeoutError:  # a chance to see `stop`
            continue
        response = dns_answer(query, addresses_by_name)
        if response is not None:
            server.sendto(response, client)


@contextmanager
def running_stub_dns(addresses_by_name: Mapping[str, Sequence[str]]) -> Iterator[int]:
    """A DNS server on a free UDP port of 127.0.0.1 for these names; yields the port."""
    names = {name.lower(): tuple(addresses) for name, addresses in addresses_by_name.items()}
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind(("127.0.0.1", 0))
    server.settimeout(0.1)
    stop = threading.Event()
    thread = threading.Thread(
        target=_serve, args=(server, names, stop), name="stub-dns", daemon=True
    )
    thread.start()
    try:
        yield int(server.getsockname()[1])
    finally:
        stop.set()
        thread.join(timeout=5)
        server.close()
