"""The registry, the settings classes, the config wiring and each method's errors."""

import json

import pytest
import torch
from peft import LoraConfig as PeftLoraConfig

from tuneforge.config import build_config, load_config
from tuneforge.errors import ConfigError, TuneforgeError
from tuneforge.methods import METHODS, get_method, method_config, parameter_report, register
from tuneforge.methods.adapter import CONFIG_FILE, AdapterSettings, disabled
from tuneforge.methods.lora import LoraSettings
from tuneforge.models import tiny_llama


def test_registry_rejects_a_duplicate_name():
    before = dict(METHODS)
    with pytest.raises(ValueError, match="'lora' is already registered"):
        register(METHODS["lora"])
    assert METHODS == before


def test_registry_rejects_a_settings_class_for_another_name():
    class Misnamed:
        name = "misnamed"
        config_cls = LoraSettings
        uses_prompt_tokens = False

    with pytest.raises(ValueError, match="LoraSettings.name must default to it"):
        register(Misnamed())
    assert "misnamed" not in METHODS


def test_every_method_has_its_own_documented_settings():
    for name, method in METHODS.items():
        assert method.name == name
        assert method_config({"name": name}).name == name
        assert method.config_cls.model_config["extra"] == "forbid"
        for field, info in method.config_cls.model_fields.items():
            assert info.description or field == "name", f"{name}.{field} has no docstring"
    assert [n for n, m in METHODS.items() if m.uses_prompt_tokens] == ["prefix", "prompt", "ptuning"]


def test_unknown_method_names_the_closest():
    with pytest.raises(ConfigError, match=r"unknown method 'lroa'; did you mean 'lora'\?"):
        get_method("lroa")


def test_bad_setting_names_the_key_and_the_closest():
    with pytest.raises(ConfigError, match=r"unknown key 'method.alhpa' for method 'lora'; "
                                          r"did you mean 'alpha'\?"):
        method_config({"name": "lora", "alhpa": 8})
    with pytest.raises(ConfigError, match=r"unknown key 'method.zzz' for method 'prompt'; "
                                          r"valid keys: name, num_virtual_tokens"):
        method_config({"name": "prompt", "zzz": 1})
    with pytest.raises(ConfigError, match=r"'method.r': Input should be greater than 0"):
        method_config({"name": "lora", "r": 0})
    with pytest.raises(ConfigError, match=r"'method': .*feedforward_modules \['down_proj'\] are not in target"):
        method_config({"name": "ia3", "target_modules": ["k_proj"], "feedforward_modules": ["down_proj"]})


def test_yaml_method_section_is_validated_by_the_method(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("method:\n  name: lora\n  r: 16\n  target_modules: all-linear\n  dora: true\n")
    cfg = load_config(path, ["method.alpha=32"])
    assert isinstance(cfg.method, LoraSettings)
    assert (cfg.method.r, cfg.method.alpha, cfg.method.dora) == (16, 32, True)
    # The resolved config a run writes keeps every setting of the method.
    assert cfg.model_dump()["method"] == {"name": "lora", "r": 16, "alpha": 32.0, "dropout": 0.05,
                                          "target_modules": "all-linear", "rslora": False, "dora": True}
    path.write_text("method:\n  name: adapter\n  botleneck: 8\n")
    with pytest.raises(ConfigError,
                       match=r"run.yaml: unknown key 'method.botleneck' .* did you mean 'bottleneck'"):
        load_config(path)


def test_method_defaults_and_shorthand():
    assert build_config({}).method == LoraSettings()
    assert build_config({"method": "adapter"}).method == AdapterSettings()
    assert build_config({"method": {"r": 4}}).method == LoraSettings(r=4)
    with pytest.raises(ConfigError, match="model.quantization: 4bit"):
        build_config({"method": "qlora"})
    assert build_config({"method": "qlora", "model": {"quantization": "4bit"}}).method.name == "qlora"


@pytest.mark.skipif(torch.cuda.is_available(), reason="the CPU error needs a machine without CUDA")
def test_qlora_on_cpu_is_a_clear_error():
    cfg = method_config({"name": "qlora"})
    with pytest.raises(TuneforgeError, match="method 'qlora' needs a CUDA GPU.*Use method 'lora'"):
        get_method("qlora").apply(tiny_llama(vocab_size=128), cfg)


def test_freeze_trains_only_the_named_parameters():
    cfg = method_config({"name": "freeze", "last_layers": 1, "patterns": ["model.norm.*"]})
    model = get_method("freeze").apply(tiny_llama(vocab_size=128), cfg)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {n for n, _ in model.named_parameters() if n.startswith("model.layers.1.")} | {
        "model.norm.weight"}


def test_freeze_rejects_settings_that_train_nothing_or_miss():
    freeze = get_method("freeze")
    with pytest.raises(ConfigError, match="would train nothing"):
        freeze.apply(tiny_llama(vocab_size=128), method_config({"name": "freeze", "last_layers": 0}))
    with pytest.raises(ConfigError, match=r"'method.patterns': '\*.mlp_typo.\*' matches no parameter"):
        freeze.apply(tiny_llama(vocab_size=128),
                     method_config({"name": "freeze", "patterns": ["*.mlp_typo.*"]}))
    with pytest.raises(ConfigError, match="'method.last_layers': 3, but the model has 2 layers"):
        freeze.apply(tiny_llama(vocab_size=128), method_config({"name": "freeze", "last_layers": 3}))


def test_adapter_starts_exactly_at_the_base_and_refuses_a_second_stack():
    ids = torch.tensor([[1, 5, 9, 2, 7]])
    base = tiny_llama(vocab_size=128)
    with torch.no_grad():
        expected = base(ids).logits
        model = get_method("adapter").apply(base, AdapterSettings(bottleneck=4))
        assert torch.equal(model(ids).logits, expected)
    with pytest.raises(TuneforgeError, match="already has bottleneck adapters"):
        get_method("adapter").apply(model, AdapterSettings())


def test_disabled_adapters_give_the_base_back_without_a_copy():
    ids = torch.tensor([[1, 5, 9, 2, 7]])
    base = tiny_llama(vocab_size=128)
    with torch.no_grad():
        expected = base(ids).logits
        model = get_method("adapter").apply(base, AdapterSettings(bottleneck=4))
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.1)
        adapted = model(ids).logits
        assert not torch.allclose(adapted, expected)
        with disabled(model):
            assert torch.equal(model(ids).logits, expected)
        assert torch.equal(model(ids).logits, adapted)


def test_adapter_directory_is_not_mistaken_for_peft_and_checks_its_base(tmp_path):
    adapter = get_method("adapter")
    adapter.save(adapter.apply(tiny_llama(vocab_size=128), AdapterSettings(bottleneck=4)), tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bottleneck_adapter.json",
                                                           "bottleneck_adapter.safetensors"]
    assert json.loads((tmp_path / CONFIG_FILE).read_text())["bottleneck"] == 4
    with pytest.raises(ConfigError, match="adapters for hidden size 64, base model has 32"):
        adapter.load(tiny_llama(vocab_size=128, hidden_size=32), tmp_path)
    with pytest.raises(ConfigError, match="missing .*layers.2"):
        adapter.load(tiny_llama(vocab_size=128, layers=3), tmp_path)


def test_peft_load_checks_the_adapter_kind(tmp_path):
    lora = get_method("lora")
    lora.save(lora.apply(tiny_llama(vocab_size=128), LoraSettings(r=2)), tmp_path)
    assert PeftLoraConfig.from_pretrained(str(tmp_path)).r == 2
    with pytest.raises(ConfigError, match="holds a LORA adapter, not PROMPT_TUNING"):
        get_method("prompt").load(tiny_llama(vocab_size=128), tmp_path)
    with pytest.raises(ConfigError, match="not a PEFT adapter directory"):
        lora.load(tiny_llama(vocab_size=128), tmp_path / "missing")


def test_peft_rejections_name_the_method():
    cfg = method_config({"name": "lora", "target_modules": ["no_such_proj"]})
    with pytest.raises(ConfigError, match="method 'lora': .*no_such_proj"):
        get_method("lora").apply(tiny_llama(vocab_size=128), cfg)


def test_parameter_report_counts_tied_weights_once():
    model = tiny_llama(vocab_size=128)
    model.lm_head.weight = model.model.embed_tokens.weight
    model.requires_grad_(False)
    model.lm_head.requires_grad_(True)
    report = parameter_report(model)
    assert (report.trainable, report.total) == (128 * 64, 90432 - 128 * 64)
    assert str(report) == "trainable params: 8,192 / 82,240 (9.9611%)"


# Which registered method reads back each method's artefact: a QLoRA adapter is a LoRA adapter, a
# freeze run writes a whole model as full does.
READ_BACK_BY = {"qlora": "lora", "freeze": "full"}


@pytest.mark.parametrize("name", [n for n in METHODS if n != "qlora"])
def test_each_artefact_is_recognised_by_exactly_one_method(name, tmp_path):
    from tuneforge.methods.artefact import method_of

    method = get_method(name)
    model = method.apply(tiny_llama(vocab_size=128), method_config({"name": name}))
    method.save(model, tmp_path)
    claimed = [m.name for m in METHODS.values() if m.recognises(tmp_path)]
    assert method_of(tmp_path).name == READ_BACK_BY.get(name, name)
    assert claimed == [READ_BACK_BY.get(name, name)]
    assert get_method(READ_BACK_BY.get(name, name)).peft_type == method.peft_type
    assert method.writes_whole_model == (method.adapters_off(model) is None)


def test_an_unknown_directory_names_what_it_lacks(tmp_path):
    from tuneforge.methods.artefact import method_of

    with pytest.raises(TuneforgeError, match="not an adapter or model directory"):
        method_of(tmp_path)
    (tmp_path / "adapter_config.json").write_text(json.dumps({"peft_type": "LOHA"}))
    with pytest.raises(TuneforgeError, match="unsupported peft adapter type 'LOHA'"):
        method_of(tmp_path)
