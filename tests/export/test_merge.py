"""Export: merged LoRA / DoRA / IA3 give the adapted model's logits within 1e-4 in float32, in a plain
transformers directory with the tokenizer and chat template; broken adapters are refused."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file
from tests.serve.test_engine import random_artefact

from tuneforge.errors import TuneforgeError
from tuneforge.export.merge import export

MERGEABLE = {"lora": {"name": "lora", "r": 4}, "dora": {"name": "lora", "r": 4, "dora": True}, "ia3": {"name": "ia3"}}


@pytest.mark.parametrize("method", MERGEABLE)
def test_merged_export_matches_the_adapted_model(tiny_dir, tmp_path, method):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tuneforge.methods.artefact import method_of
    from tuneforge.models import load_model

    artefact = random_artefact(tiny_dir, tmp_path / "adapter", MERGEABLE[method])
    report = export(str(tiny_dir), artefact, tmp_path / "merged", merge=True, dtype="float32")
    assert report.merged and report.max_abs_logit_diff < 1e-4

    # Independently of the report: plain transformers on the export vs peft on base + adapter.
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "merged", dtype=torch.float32)
    assert not any("lora" in n or "ia3" in n for n, _ in merged.named_parameters())
    base, _ = load_model(str(tiny_dir))
    adapted = method_of(artefact).load(base, artefact)
    ids = torch.randint(0, 1000, (2, 16), generator=torch.Generator().manual_seed(0))  # (B, T)
    with torch.no_grad():
        diff = (merged(input_ids=ids).logits - adapted(input_ids=ids).logits).abs().max().item()
    assert diff < 1e-4
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "merged")
    assert tokenizer.chat_template and tokenizer.apply_chat_template([{"role": "user", "content": "hi"}],
                                                                     tokenize=False)


def test_adapter_export_is_a_clean_peft_directory(adapters, tiny_dir, tmp_path):
    report = export(str(tiny_dir), adapters["alpha"], tmp_path / "out", merge=False)
    assert not report.merged and report.max_abs_logit_diff == 0
    files = {p.name for p in (tmp_path / "out").iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors", "tokenizer_config.json"} <= files
    assert not files & {"metrics.jsonl", "manifest.json", "config.yaml"}


def test_nan_weights_are_refused_and_nothing_unmergeable_is_merged(tiny_dir, tmp_path):
    artefact = random_artefact(tiny_dir, tmp_path / "adapter", MERGEABLE["lora"])
    weights = load_file(artefact / "adapter_model.safetensors")
    first = sorted(weights)[0]
    weights[first][0, 0] = float("nan")
    save_file(weights, artefact / "adapter_model.safetensors")
    with pytest.raises(TuneforgeError, match="NaN"):
        export(str(tiny_dir), artefact, tmp_path / "merged", merge=True)
    bottleneck = random_artefact(tiny_dir, tmp_path / "bottleneck", {"name": "adapter", "bottleneck": 8})
    with pytest.raises(TuneforgeError, match="without --merge"):
        export(str(tiny_dir), bottleneck, tmp_path / "merged2", merge=True)
    assert json.loads((bottleneck / "bottleneck_adapter.json").read_text())["bottleneck"] == 8
