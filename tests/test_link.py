"""Ableton Link with a real second peer, only inside a private network namespace."""

from __future__ import annotations

from pathlib import Path

import pytest
from netns import isolated

pytest.importorskip("aalink", reason="Ableton Link needs the aalink package")


def test_the_show_joins_a_link_session_and_follows_its_tempo_and_beat():
    result = isolated(Path(__file__).with_name("netns_link.py"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "followed the peer to 90 BPM" in result.stdout
