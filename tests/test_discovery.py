"""Zeroconf advertisement, run only inside a private network namespace (netns_discovery.py),
so that no multicast leaves this machine."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = Path(__file__).with_name("netns_discovery.py")


def isolated(mode: str, *setup: list[str]) -> subprocess.CompletedProcess[str]:
    """Run netns_discovery.py `mode` in a new network namespace after the `setup` commands."""
    ip = shutil.which("ip") or shutil.which("ip", path="/usr/sbin:/sbin")
    if shutil.which("unshare") is None or ip is None:
        pytest.skip("needs unshare (util-linux) and ip (iproute2) for a private network namespace")
    for unshare in (["unshare", "-n"], ["unshare", "-rn"]):  # root, else a user namespace
        if subprocess.run([*unshare, "true"], capture_output=True).returncode == 0:
            break
    else:
        pytest.skip("cannot create a network namespace here (unshare -n and -rn both fail)")
    steps = [[ip, *step] for step in setup] + [[sys.executable, str(SCRIPT), mode]]
    script = " && ".join(shlex.join(step) for step in steps)
    return subprocess.run([*unshare, "sh", "-c", script], capture_output=True, text=True,
                          timeout=60, cwd=ROOT)


def test_controllers_discover_and_query_the_show():
    result = isolated("discover", ["link", "set", "lo", "up"],
                      ["link", "set", "lo", "multicast", "on"],
                      ["route", "add", "224.0.0.0/4", "dev", "lo"])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "discovered ['perform " in result.stdout and "withdrawn" in result.stdout


def test_advertising_without_multicast_returns_none_with_a_warning():
    result = isolated("unavailable")  # the namespace's loopback stays down
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("unavailable: zeroconf: not advertising on") == 4
