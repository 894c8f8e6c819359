"""Test modules run side by side (`make test` spreads them over workers): no two of them may
bind the same port. Each module with a live stack shifts the spec's ports by its own
PORT_OFFSET; this holds every pair of shifted port sets, and the Kubernetes fixture's fixed
ports, apart, and keeps them below the kernel's ephemeral range (where an outgoing connection
may already hold the port)."""

from __future__ import annotations

import ast
import itertools
from pathlib import Path

from .conftest import load_stack
from .support.kube import PORTS as KUBE_PORTS

TESTS = Path(__file__).parent


def _offsets() -> dict[str, int]:
    """Module file name → its PORT_OFFSET, for every test module that has one."""
    found = {}
    for path in sorted(TESTS.glob("test_*.py")):
        for node in ast.parse(path.read_text()).body:
            if (isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
                    and any(getattr(t, "id", None) == "PORT_OFFSET" for t in node.targets)):
                found[path.name] = node.value.value
    return found


EXTRA_PORTS = {9411, 9412}
"""Ports some modules shift besides the spec's: Zipkin's receiver and server (test_integrations)."""


def _stack_ports() -> set[int]:
    spec = load_stack()
    return {*spec["ports"].values(), spec["services"]["theodore-demo"]["port"], spec["demo"]["upstream_port"],
            *EXTRA_PORTS}


def _ephemeral_floor() -> int:
    """The lowest port the kernel hands to outgoing connections (Linux's default: 32768)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def test_modules_with_a_stack_have_offsets_and_the_scan_finds_them() -> None:
    offsets = _offsets()
    assert {"test_native.py", "test_drill_faults.py", "test_alert_routing.py"} <= set(offsets)
    assert all(isinstance(offset, int) for offset in offsets.values())


def test_no_two_modules_bind_the_same_port() -> None:
    base = _stack_ports()
    shifted = {name: {port + offset for port in base} for name, offset in _offsets().items()}
    clashes = [(a, b, sorted(shifted[a] & shifted[b])[:3]) for a, b in itertools.combinations(shifted, 2)
               if shifted[a] & shifted[b]]
    assert not clashes, f"test modules whose ports collide (pick another PORT_OFFSET): {clashes}"
    kube = set(KUBE_PORTS.values())
    on_kube = [(name, sorted(ports & kube)) for name, ports in shifted.items() if ports & kube]
    assert not on_kube, f"test modules on the Kubernetes fixture's ports: {on_kube}"
    floor = _ephemeral_floor()
    high = {name: max(ports) for name, ports in shifted.items() if max(ports) >= floor}
    assert not high, f"test modules with ports in the ephemeral range (from {floor}): {high}"
    assert not any(ports & base for ports in shifted.values()), "a module on the unshifted ports"
