"""Zeroconf advertisement, run only inside a private network namespace (netns_discovery.py),
so that no multicast leaves this machine."""

from __future__ import annotations

from pathlib import Path

from netns import isolated

SCRIPT = Path(__file__).with_name("netns_discovery.py")


def test_controllers_discover_and_query_the_show():
    result = isolated(SCRIPT, "discover")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "discovered ['perform " in result.stdout and "withdrawn" in result.stdout


def test_advertising_without_multicast_returns_none_with_a_warning():
    result = isolated(SCRIPT, "unavailable", setup=())  # the namespace's loopback stays down
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("unavailable: zeroconf: not advertising on") == 4
