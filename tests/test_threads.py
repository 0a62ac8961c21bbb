"""Threads follow the cores other processes leave free, unless fixed by --threads or TUNEFORGE_THREADS."""

from __future__ import annotations

import multiprocessing as mp
import time

import pytest
import torch

from tuneforge import threads
from tuneforge.errors import ConfigError


@pytest.fixture(autouse=True)
def keep_torch_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_default_leaves_out_the_cores_others_keep_busy(monkeypatch):
    monkeypatch.setattr(threads, "available_cores", lambda: 4)
    for busy, expected in [(0.0, 4), (0.9, 3), (2.2, 2), (3.6, 1), (9.0, 1)]:
        monkeypatch.setattr(threads, "busy_cores", lambda busy=busy: busy)
        assert threads.default_threads() == expected, busy
        assert threads.use_threads() == expected and torch.get_num_threads() == expected


def test_explicit_threads_win(monkeypatch):
    monkeypatch.setattr(threads, "busy_cores", lambda: 100.0)
    assert threads.use_threads(2) == 2 and torch.get_num_threads() == 2
    monkeypatch.setenv(threads.ENV, "3")
    assert threads.use_threads() == 3
    assert threads.use_threads(1) == 1  # the option beats the environment
    monkeypatch.setenv(threads.ENV, "many")
    with pytest.raises(ConfigError, match="TUNEFORGE_THREADS='many'"):
        threads.use_threads()
    with pytest.raises(ConfigError, match="at least 1"):
        threads.use_threads(0)


def _spin(seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


def test_a_competing_cpu_bound_process_is_counted():
    before = threads.busy_cores()
    hog = mp.get_context("spawn").Process(target=_spin, args=(5.0,))
    hog.start()
    try:
        time.sleep(1.0)  # the spawned interpreter has started and spins
        during = threads.busy_cores(samples=10)
    finally:
        hog.terminate()
        hog.join()
    assert during >= before + 0.5, (before, during)


def test_doctor_warns_when_the_load_exceeds_the_cores(monkeypatch):
    import os

    from tuneforge.doctor import _busy_machine_findings

    monkeypatch.setattr(threads, "available_cores", lambda: 2)
    monkeypatch.setattr(threads, "busy_cores", lambda: 1.0)
    monkeypatch.setattr(os, "getloadavg", lambda: (3.5, 3.0, 2.0))
    (finding,) = _busy_machine_findings()
    assert finding.code == "machine_busy" and "3.5 on 2 available cores" in finding.message
    assert "uses 1 torch thread" in finding.message
    monkeypatch.setattr(os, "getloadavg", lambda: (1.2, 1.0, 1.0))
    assert _busy_machine_findings() == []


@pytest.mark.parametrize("command", [["train", "{cfg}"], ["eval", "{cfg}"], ["serve", "--model", "{tmp}/none"]])
def test_threads_option_reaches_torch(tmp_path, monkeypatch, command):
    from typer.testing import CliRunner

    from tuneforge.cli import app

    seen = []
    monkeypatch.setattr(threads, "use_threads", lambda n=None: seen.append(n) or 1)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"model:\n  name_or_path: {tmp_path}/none\ndata: {tmp_path}/none.jsonl\n")
    args = [a.format(cfg=cfg, tmp=tmp_path) for a in command] + ["--threads", "3"]
    CliRunner().invoke(app, args)  # fails later, on the missing model or data
    assert seen[:1] == [3]
