"""The NDI output. A real sender and cyndilib receiver run only inside a private network
namespace (netns_ndi.py): an NDI sender listens on every interface and announces itself,
so none is ever started in this process. Here: what happens without cyndilib, and options.
"""

from __future__ import annotations

import re
import sys
from fractions import Fraction
from pathlib import Path

import pytest
from netns import isolated

from perform.outputs.base import OutputSpec, OutputUnavailable, RunningOutput
from perform.outputs.ndi import NdiOutput, exact_rate


def ndi(options: str = "name=perform-test", fps: float = 30.0) -> NdiOutput:
    return NdiOutput(OutputSpec.parse(f"ndi:{options}"), 64, 48, fps)


def test_a_receiver_finds_it_by_name_and_gets_its_frames() -> None:
    pytest.importorskip("cyndilib", reason="NDI needs the cyndilib package (perform[ndi])")
    result = isolated(Path(__file__).with_name("netns_ndi.py"), timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"found: '.+ \(perform-test-\d+\)' by name", result.stdout), result.stdout
    for line in ("pixels: 64x48", "frame rate: 30.0 -> 30;", "receivers 1",
                 "receiver left: status running", "a new receiver got 64x48",
                 "same name twice: NDI did not make source", "letterbox: 64x48 into 32x32",
                 "59.94 -> 60000/1001", "luma alpha: black 0", "fps=29.97 -> 30000/1001",
                 "all checks passed"):
        assert line in result.stdout, result.stdout


def test_without_cyndilib_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "cyndilib", None)  # as if not installed
    with pytest.raises(OutputUnavailable, match=r"pip install 'perform\[ndi\]'"):
        ndi().open()
    runner = RunningOutput(ndi())
    runner.start()
    try:
        runner._thread.join(2)
        assert not runner._thread.is_alive()  # said once, never tried again
        state = runner.state()
        assert state["status"] == "unavailable" and state["sent"] == 0
        assert "pip install 'perform[ndi]'" in state["last_error"]
        assert "\n" not in state["last_error"]
        assert state["ndi_name"] == "perform-test" and "receivers" not in state
    finally:
        runner.close(timeout=0.5)


@pytest.mark.parametrize(("fps", "rate"), [
    (30.0, Fraction(30)), (29.97, Fraction(30000, 1001)), (30000 / 1001, Fraction(30000, 1001)),
    (59.94, Fraction(60000, 1001)), (23.976, Fraction(24000, 1001)), (12.5, Fraction(25, 2))])
def test_frame_rate_is_an_exact_fraction(fps: float, rate: Fraction) -> None:
    assert exact_rate(fps) == rate


def test_options() -> None:
    assert ndi("fps=29.97", fps=60.0).rate == Fraction(30000, 1001)  # fps= wins over the show's
    assert ndi(fps=60.0).rate == Fraction(60)
    output = ndi("")
    assert (output.ndi_name, output.alpha) == ("perform", "opaque")
    assert ndi("alpha=luma").alpha == "luma"
    with pytest.raises(ValueError, match="alpha='glow': one of opaque, luma"):
        ndi("alpha=glow")
    with pytest.raises(ValueError, match="no option 'groups'"):
        ndi("groups=stage")
