"""Test helpers for servers started by the tests: free loopback ports and the processes a server left.

Usage: from procs import free_ports, descendants, running  (tests/ is on sys.path via its conftest)
"""

from __future__ import annotations

import socket
from pathlib import Path


def free_ports(n: int) -> list[int]:
    """`n` distinct ports free on 127.0.0.1 right now.

    Each socket listens while the others are chosen, and the set is checked: a CI kernel handed the same
    ephemeral port to two sockets that were only bound (ports [40375, 53199, 53199] killed a Triton start).
    """
    for _ in range(20):
        sockets = [socket.socket() for _ in range(n)]
        try:
            for s in sockets:
                s.bind(("127.0.0.1", 0))
                s.listen(1)
            ports = [s.getsockname()[1] for s in sockets]
        finally:
            for s in sockets:
                s.close()
        if len(set(ports)) == n:
            return ports
    raise RuntimeError(f"no {n} distinct free ports on 127.0.0.1 in 20 tries (last {ports})")


def descendants(pid: int) -> set[int]:
    """Every live process below `pid` (from /proc's parent links)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def running(pid: int) -> bool:
    """Alive and not a zombie (stubs orphaned by a stop during start-up wait briefly for init to reap them)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
