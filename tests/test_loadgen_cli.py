"""``chatbench seed`` end to end on its own throwaway server: summary, checksum, errors."""

from __future__ import annotations

import re
import subprocess

import pytest
from commandline import in_process


def _seed(capsys: pytest.CaptureFixture[str], *args: str) -> subprocess.CompletedProcess[str]:
    return in_process(capsys, "seed", "--backend", "local", *args)


def test_seed_command_prints_summary_and_checksum(capsys: pytest.CaptureFixture[str]) -> None:
    done = _seed(capsys, "--profile", "smoke", "--set", "messages.count=8000", "--set", "conversations.count=500",
                 "--workers", "2", "--no-cache")
    assert done.returncode == 0, done.stderr
    assert re.fullmatch(r"[0-9a-f]{32}\n", done.stdout)
    checksum = done.stdout.strip()
    for needle in ("messages", "8,000", "indexes", "vacuum_analyze", f"checksum {checksum}",
                   "order time: pg_stats.correlation(messages.created_at) =", "whales (id, messages):"):
        assert needle in done.stderr, needle


def test_seed_command_rejects_bad_spec_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    done = _seed(capsys, "--profile", "smoke", "--set", "whales.count=-1")
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert any("whales.count = -1" in line and ">= 1" in line for line in lines), done.stderr
    assert "Traceback" not in done.stderr
