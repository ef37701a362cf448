"""Run a test script inside a private network namespace, so multicast never leaves the machine.

mDNS (zeroconf) and Ableton Link find peers by multicast; in a namespace of its own, with
only the loopback interface, a test can use them for real without talking to the network.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LOOPBACK_MULTICAST = (["link", "set", "lo", "up"], ["link", "set", "lo", "multicast", "on"],
                      ["route", "add", "224.0.0.0/4", "dev", "lo"])


def isolated(script: Path, *args: str, setup: tuple[list[str], ...] = LOOPBACK_MULTICAST,
             timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run `python script args` in a new network namespace after the `ip` commands `setup`."""
    ip = shutil.which("ip") or shutil.which("ip", path="/usr/sbin:/sbin")
    if shutil.which("unshare") is None or ip is None:
        pytest.skip("needs unshare (util-linux) and ip (iproute2) for a private network namespace")
    for unshare in (["unshare", "-n"], ["unshare", "-rn"]):  # root, else a user namespace
        if subprocess.run([*unshare, "true"], capture_output=True).returncode == 0:
            break
    else:
        pytest.skip("cannot create a network namespace here (unshare -n and -rn both fail)")
    steps = [[ip, *step] for step in setup] + [[sys.executable, str(script), *args]]
    command = " && ".join(shlex.join(step) for step in steps)
    return subprocess.run([*unshare, "sh", "-c", command], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)
