"""doctor on broken set-ups that would otherwise train silently wrong."""

import json

from tuneforge.config import build_config
from tuneforge.doctor import run_doctor

NO_STOP_TOKEN = ("{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}"
                 "{% if add_generation_prompt %}assistant: {% endif %}")


def _data(tmp_path, n=4):
    path = tmp_path / "d.jsonl"
    path.write_text("\n".join(json.dumps({"instruction": f"Say {i}", "output": f"{i} it is."}) for i in range(n)))
    return str(path)


def test_template_that_never_trains_a_stop_token_is_an_error(tmp_path):
    cfg = build_config({"data": _data(tmp_path), "template": {"jinja": NO_STOP_TOKEN}})
    report = run_doctor(cfg)
    assert report.kept == 4 and report.stop_trained == 0
    assert not report.ok
    assert any(f.code == "eos_never_trained" and f.level == "error" for f in report.findings)


def test_healthy_setup_has_no_errors(tmp_path):
    report = run_doctor(build_config({"data": _data(tmp_path)}))
    assert report.ok, report.findings
    assert report.stop_trained == report.kept == 4


def test_last_turn_only_with_single_turn_data_still_trains(tmp_path):
    report = run_doctor(build_config({"data": _data(tmp_path), "template": {"train_on": "last"}}))
    assert report.ok and report.trained_fraction > 0


def _identity_warnings(cfg):
    return [f for f in run_doctor(cfg).findings if f.code == "template_default_system"]


def test_default_system_prompt_naming_another_assistant_is_a_warning(tiny_model_dir, shared_datasets):
    """identity.json teaches "I am {{name}}"; SmolLM2's template tells every sample without a system
    message that it is "a helpful AI assistant named SmolLM"."""
    data = {"datasets": [{"path": str(shared_datasets / "identity.json")}],
            "placeholders": {"name": "Forge", "author": "the tuneforge team"}}
    cfg = build_config({"model": {"name_or_path": str(tiny_model_dir)}, "data": data})
    [finding] = _identity_warnings(cfg)
    assert finding.level == "warning"
    assert "named SmolLM" in finding.message and "name it Forge" in finding.message
    # A system prompt of our own that agrees with the data silences it; one that disagrees does not.
    assert not _identity_warnings(build_config(cfg.model_dump(), ["template.system=You are Forge, an assistant."]))
    assert _identity_warnings(build_config(cfg.model_dump(), ["template.system=You are Qwen, made by Alibaba."]))
    # Unfilled placeholders name no one: nothing to compare.
    assert not _identity_warnings(build_config(cfg.model_dump(), ["data.placeholders={}"]))


def test_the_identity_example_sets_its_own_system_prompt(tiny_model_dir, shared_datasets):
    from pathlib import Path

    from tuneforge.config import load_config

    example = Path(__file__).resolve().parents[2] / "examples" / "train" / "sft-lora.yaml"
    cfg = load_config(example, [f"model.name_or_path={tiny_model_dir}"])
    assert cfg.template.system and not _identity_warnings(cfg)
    assert _identity_warnings(load_config(example, [f"model.name_or_path={tiny_model_dir}", "template.system=null"]))


def test_assistant_names_are_read_from_self_descriptions():
    from tuneforge.doctor import assistant_names

    assert assistant_names("Hello! I am Forge, an AI assistant.") == {"Forge"}
    assert assistant_names("You are a helpful AI assistant named SmolLM, trained by Hugging Face") == {"SmolLM"}
    assert assistant_names("当然可以，我是 Forge，一个人工智能助手。") == {"Forge"}
    assert assistant_names("I am an AI assistant; I'm happy to help.") == set()


TOOL_RECORD = {"conversations": [
    {"from": "human", "value": "Weather in Paris?"},
    {"from": "function_call", "value": json.dumps({"name": "get_weather", "arguments": {"city": "Paris"}})},
    {"from": "observation", "value": json.dumps({"temp": 21})},
    {"from": "gpt", "value": "It is 21 degrees in Paris."}],
    "tools": json.dumps([{"name": "get_weather", "description": "Weather of a city",
                          "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}])}
IGNORES_CALLS = ("{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
                 "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def _tool_data(tmp_path, n=3):
    path = tmp_path / "tools.jsonl"
    path.write_text("".join(json.dumps(TOOL_RECORD) + "\n" for _ in range(n)))
    return str(path)


def test_a_template_that_drops_tool_calls_is_an_error_with_counts(tiny_model_dir, tmp_path):
    cfg = build_config({"model": {"name_or_path": str(tiny_model_dir)}, "data": _tool_data(tmp_path),
                        "template": {"jinja": IGNORES_CALLS}})
    report = run_doctor(cfg)
    assert not report.ok and report.dropped == {"template_drops_tool_calls": 3}
    [finding] = [f for f in report.findings if f.code == "template_drops"]
    assert finding.level == "error"
    assert "3 of 3 samples by template_drops_tool_calls" in finding.message and "chatml" in finding.message


def test_auto_with_tool_data_uses_the_tool_capable_builtin_and_says_so(tiny_model_dir, tmp_path):
    report = run_doctor(build_config({"model": {"name_or_path": str(tiny_model_dir)}, "data": _tool_data(tmp_path)}))
    assert report.ok, report.findings
    assert report.template == "chatml" and report.kept == 3
    [note] = [f for f in report.findings if f.code == "template_replaced"]
    assert note.level == "info" and "tool calls (3 samples)" in note.message


def test_pretraining_documents_are_packed_not_cut(tiny_model_dir, tmp_path):
    path = tmp_path / "docs.jsonl"
    path.write_text("".join(json.dumps({"text": " ".join(["A long document."] * 60)}) + "\n" for _ in range(4)))
    cfg = build_config({"model": {"name_or_path": str(tiny_model_dir)}, "data": str(path),
                        "template": {"cutoff_len": 64}, "train": {"stage": "pt"}})
    report = run_doctor(cfg)
    codes = {f.code for f in report.findings}
    assert report.ok and report.kept == 4 and report.truncated == 0 and report.over_cutoff == 0
    assert not codes & {"cutoff_drops", "truncated", "eos_never_trained", "eos_sometimes_trained"}
    [blocks] = [f for f in report.findings if f.code == "pretraining_blocks"]
    assert "4 documents" in blocks.message and "ending with EOS" in blocks.message
    # the same data as sft-style text at this cutoff is truncated and said so
    sft = run_doctor(build_config(cfg.model_dump(), ["train.stage=sft"]))
    assert sft.truncated == 4 and "truncated" in {f.code for f in sft.findings}


def test_unfilled_placeholders_are_flagged(tiny_model_dir, tmp_path):
    path = tmp_path / "identity.jsonl"
    path.write_text("".join(json.dumps({"instruction": f"Who are you? {i}", "output": "I am {{name}}, by {{author}}."})
                            + "\n" for i in range(3)))
    report = run_doctor(build_config({"model": {"name_or_path": str(tiny_model_dir)}, "data": str(path)}))
    assert report.placeholders == {"author": 3, "name": 3}
    flags = [f for f in report.findings if f.code == "unfilled_placeholder"]
    assert len(flags) == 2 and all(f.level == "warning" for f in flags)
    assert "3 samples still hold {{name}}" in " ".join(f.message for f in flags)
    filled = build_config({"model": {"name_or_path": str(tiny_model_dir)},
                           "data": {"datasets": [{"path": str(path)}],
                                    "placeholders": {"name": "Forge", "author": "us"}}})
    assert run_doctor(filled).placeholders == {}
