"""Adding a method touches `tuneforge.methods` only: a toy method registered from this test (a learned
gain on the last decoder layer's MLP output, saved in a format of its own) trains with `tuneforge
train`'s code, is recognised in its output directory, serves through the engine beside the base, and
exports both merged (its gain folded into `down_proj`) and as its own directory. Nothing outside the
method object knows its name."""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from tuneforge.config import MethodSettings, build_config
from tuneforge.methods import METHODS, register
from tuneforge.methods._layers import decoder_layers
from tuneforge.methods.artefact import method_of

CONFIG_FILE, WEIGHTS_FILE = "gain.json", "gain.safetensors"


class GainSettings(MethodSettings):
    name: Literal["gain"] = "gain"


def _mlp(model: nn.Module) -> nn.Module:
    return decoder_layers(model)[-1].mlp


class Gain:
    name = "gain"
    config_cls = GainSettings
    uses_prompt_tokens = False
    peft_type = None
    writes_whole_model = False
    mergeable = True
    shares_base = False

    def check(self, cfg) -> None:
        pass

    def apply(self, model: nn.Module, cfg: GainSettings) -> nn.Module:
        model.requires_grad_(False)
        mlp = _mlp(model)
        mlp.gain = nn.Parameter(torch.ones(mlp.down_proj.out_features))  # (H,)
        mlp.gain_on = True
        mlp.gain_hook = mlp.register_forward_hook(lambda m, args, out: out * m.gain if m.gain_on else out)
        return model

    def save(self, model: nn.Module, out_dir: Path) -> None:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        save_file({"gain": _mlp(model).gain.detach().contiguous()}, str(Path(out_dir) / WEIGHTS_FILE))
        (Path(out_dir) / CONFIG_FILE).write_text(json.dumps({"format": "toy-gain/1"}), encoding="utf-8")

    def recognises(self, path: Path) -> bool:
        return (Path(path) / CONFIG_FILE).is_file()

    def load(self, base_model: nn.Module, path: Path) -> nn.Module:
        model = self.apply(base_model, GainSettings())
        with torch.no_grad():
            _mlp(model).gain.copy_(load_file(str(Path(path) / WEIGHTS_FILE))["gain"])
        return model.requires_grad_(False).eval()

    def merge(self, model: nn.Module) -> nn.Module:
        mlp = _mlp(model)
        with torch.no_grad():
            mlp.down_proj.weight.mul_(mlp.gain[:, None])  # (H, I): output row h scaled by gain[h]
        if not torch.isfinite(mlp.down_proj.weight).all():
            raise ValueError("the merged down_proj holds NaN or inf")
        mlp.gain_hook.remove()
        del mlp.gain, mlp.gain_on, mlp.gain_hook
        return model

    def adapters_off(self, model: nn.Module):
        @contextmanager
        def off():
            _mlp(model).gain_on = False
            try:
                yield model
            finally:
                _mlp(model).gain_on = True

        return off

    def mixes_rows(self, path: Path) -> bool:
        return False


@pytest.fixture
def gain():
    method = Gain()
    register(method)
    try:
        yield method
    finally:
        del METHODS[method.name]


def test_a_method_registered_here_trains_serves_and_exports(gain, tiny_model_dir, tmp_path):
    from tuneforge.export import export
    from tuneforge.models import load_model
    from tuneforge.serve.engine import load_engine
    from tuneforge.serve.sampling import SamplingParams
    from tuneforge.train.run import run_training
    from tuneforge.types import Message

    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps({"messages": [{"role": "user", "content": q},
                                                     {"role": "assistant", "content": "Gain says hi."}]}) + "\n"
                            for q in ["Hi", "Who are you?", "Hello"]))
    cfg = build_config({"model": {"name_or_path": str(tiny_model_dir)}, "data": str(data), "method": "gain",
                        "train": {"output_dir": str(tmp_path / "run"), "max_steps": 3, "learning_rate": 0.1,
                                  "batch_size": 3, "packing": False, "warmup_ratio": 0}})
    final = run_training(cfg).final_dir
    assert method_of(final) is gain
    trained = load_file(str(final / WEIGHTS_FILE))["gain"]
    assert not torch.equal(trained, torch.ones_like(trained))

    # Served beside the base: a model of its own, answering as the method's own `load` does.
    base, tokenizer = load_model(str(tiny_model_dir))
    reference = gain.load(base, final)
    engine = load_engine(str(tiny_model_dir), {"gain": str(final)}, model_id="tiny")
    try:
        routes = engine.models.routes
        assert routes["gain"].group != routes["tiny"].group
        prompt = engine.encode_chat([Message("user", "Hi")], model="gain")
        ids = torch.tensor([prompt])
        expected = reference.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=8,
                                      do_sample=False, pad_token_id=engine.pad_id)[0, len(prompt):]
        got = engine.complete(prompt, SamplingParams(max_tokens=8, temperature=0), model="gain")
        assert got.text == engine.tokenizer.decode(expected, skip_special_tokens=True)
    finally:
        engine.close(drain=False)

    merged = export(str(tiny_model_dir), final, tmp_path / "merged", merge=True, dtype="float32")
    assert merged.method == "gain" and merged.max_abs_logit_diff < 1e-4
    assert not any("gain" in name for name in load_file(str(tmp_path / "merged" / "model.safetensors")))
    own = export(str(tiny_model_dir), final, tmp_path / "own", merge=False)
    assert (tmp_path / "own" / CONFIG_FILE).is_file() and own.max_abs_logit_diff < 1e-5


def test_registration_is_undone(gain):
    assert METHODS["gain"] is gain


def test_and_leaves_nothing_behind():
    assert "gain" not in METHODS
