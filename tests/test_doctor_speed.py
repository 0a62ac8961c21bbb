from tuneforge import doctor
from tuneforge.config import build_config
from tuneforge.native import lora_kernels


def config(**method):
    return build_config({"data": "unused.json", "model": {"device": "cpu"}, "method": {"name": "lora", **method}})


def test_lora_dropout_on_cpu_without_the_kernels_is_reported(monkeypatch):
    monkeypatch.setattr(lora_kernels, "library", lambda: None)
    [finding] = doctor._speed_findings(config(dropout=0.05))
    assert finding.code == "lora_kernels_unavailable" and finding.level == "info"
    assert doctor._speed_findings(config(dropout=0.0)) == []
    assert doctor._speed_findings(build_config({"data": "unused.json", "method": {"name": "full"}})) == []


def test_nothing_to_report_when_the_kernels_are_built(monkeypatch):
    monkeypatch.setattr(lora_kernels, "library", lambda: object())
    assert doctor._speed_findings(config(dropout=0.05)) == []
