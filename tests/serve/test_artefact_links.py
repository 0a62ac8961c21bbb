"""Serving and export refuse an artefact holding a symbolic link that leads out of it (a linked
`adapter_model.safetensors -> /etc/passwd`), naming the link and its target; links inside it are fine."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from tests.serve.test_engine import random_artefact
from typer.testing import CliRunner

from tuneforge.cli import app
from tuneforge.errors import TuneforgeError
from tuneforge.export.merge import export

LORA = {"name": "lora", "r": 4}


@pytest.fixture
def artefact(tiny_dir, tmp_path) -> Path:
    return random_artefact(tiny_dir, tmp_path / "run" / "final", LORA)


def link_out(artefact: Path, tmp_path: Path, name: str = "adapter_model.safetensors") -> Path:
    """Swap `name` for a link to a file outside the artefact; returns the target."""
    secret = tmp_path / "secret" / "passwd"
    secret.parent.mkdir(exist_ok=True)
    secret.write_bytes((artefact / name).read_bytes() if (artefact / name).is_file() else b"root:x:0:0")
    (artefact / name).unlink(missing_ok=True)
    (artefact / name).symlink_to(secret)
    return secret


def test_export_takes_links_inside_the_artefact_and_refuses_one_leading_out(tiny_dir, artefact, tmp_path):
    (artefact / "blobs").mkdir()
    os.replace(artefact / "adapter_model.safetensors", artefact / "blobs" / "weights")
    (artefact / "adapter_model.safetensors").symlink_to(Path("blobs") / "weights")
    linked = tmp_path / "final-link"  # the artefact folder itself may be a link
    linked.symlink_to(artefact, target_is_directory=True)
    report = export(str(tiny_dir), linked, tmp_path / "ok", merge=True, dtype="float32")
    assert report.merged and report.max_abs_logit_diff < 1e-4

    secret = link_out(artefact, tmp_path)
    for merge in (True, False):
        with pytest.raises(TuneforgeError) as err:
            export(str(tiny_dir), linked, tmp_path / "out", merge=merge)
        assert f"{artefact.resolve() / 'adapter_model.safetensors'}: a symbolic link to {secret}" in str(err.value)
        assert "outside the artefact directory" in str(err.value)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("gguf", [[], ["--gguf", "f16"]], ids=["adapter", "gguf"])
def test_export_command_names_the_link_and_its_target(tiny_dir, artefact, tmp_path, gguf):
    secret = link_out(artefact, tmp_path, "tokenizer_config.json")
    result = CliRunner().invoke(app, ["export", "--model", str(tiny_dir), "--adapter", str(artefact),
                                      "--out", str(tmp_path / "out"), "--merge", *gguf])
    assert result.exit_code != 0
    assert isinstance(result.exception, TuneforgeError)
    assert "tokenizer_config.json: a symbolic link to" in str(result.exception)
    assert str(secret) in str(result.exception)
    assert not (tmp_path / "out").exists()


def test_serving_refuses_links_out_of_an_adapter_even_deep_or_dangling(tiny_dir, artefact, tmp_path):
    from tuneforge.serve.engine import load_engine

    (artefact / "config-link.json").symlink_to("adapter_config.json")  # inside: served as before
    engine = load_engine(str(tiny_dir), {"mine": str(artefact)}, model_id="tiny")
    assert engine.model_ids == ["tiny", "mine"]
    engine.close(drain=False)
    (artefact / "extra").mkdir()
    (artefact / "extra" / "etc").symlink_to("/etc")  # a folder
    with pytest.raises(TuneforgeError, match=r"extra/etc: a symbolic link to /etc, outside"):
        load_engine(str(tiny_dir), {"evil": str(artefact)}, model_id="tiny")
    (artefact / "extra" / "etc").unlink()
    (artefact / "extra" / "later").symlink_to(tmp_path / "not-there-yet")
    with pytest.raises(TuneforgeError, match="later: a symbolic link to .*not-there-yet"):
        load_engine(str(tiny_dir), {"evil": str(artefact)}, model_id="tiny")
    (artefact / "extra" / "up").symlink_to("../../config.yaml")  # relative, into the run folder
    (artefact / "extra" / "later").unlink()
    with pytest.raises(TuneforgeError, match=r"up: a symbolic link to \.\./\.\./config\.yaml, that is .*run/config"):
        load_engine(str(tiny_dir), {"evil": str(artefact)}, model_id="tiny")
