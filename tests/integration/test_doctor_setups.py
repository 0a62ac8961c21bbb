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
