"""Precision and recall on a labelled set built from the real alpaca demo sets (en + zh) with
injected exact duplicates, near duplicates, PII of every type and boilerplate answers."""

from __future__ import annotations

import random
import re

import pytest
from curate_samples import chat, load_alpaca

from tuneforge.curate import RunOptions, parse_op, read_output, run
from tuneforge.curate.pii import PLACEHOLDERS, detect
from tuneforge.types import Sample


def near_copy(text: str, rnd: random.Random) -> str:
    """An edited copy: one of a few word/character edits, a sentence swap, or punctuation and
    spacing changes — what scraped or paraphrase-light copies look like."""
    kind = rnd.choice(["edit", "swap", "punct"])
    if kind == "punct":
        return re.sub(r"[,.，。]", lambda m: rnd.choice(["", " ", m.group(0) * 2]), text).replace(" ", "  ")
    if kind == "swap":
        parts = re.split(r"(?<=[.!?。！？])\s*", text)
        if len(parts) > 2:
            i = rnd.randrange(len(parts) - 1)
            parts[i], parts[i + 1] = parts[i + 1], parts[i]
            return " ".join(parts)
    if re.search(r"[\u4e00-\u9fff]", text):
        chars = list(text)
        for _ in range(max(1, len(chars) // 50)):
            chars[rnd.randrange(len(chars))] = rnd.choice("的是了在")
        return "".join(chars)
    words = text.split(" ")
    for _ in range(max(1, len(words) // 50)):
        words[rnd.randrange(len(words))] = rnd.choice(["really", "quite", "the"])
    return " ".join(words)


def test_near_duplicate_precision_and_recall(tmp_path):
    base = load_alpaca("alpaca_en_demo.json") + load_alpaca("alpaca_zh_demo.json")
    rnd = random.Random(0)
    injected, label = [], {}
    for i, s in enumerate(rnd.sample(base, 400)):
        copy = chat(s.messages[0].content, s.messages[1].content, source="injected", line=i + 1)
        label[i + 1] = "exact" if i % 4 == 0 else "near"
        if label[i + 1] == "near":
            copy.messages[0].content = near_copy(copy.messages[0].content, rnd)
            copy.messages[1].content = near_copy(copy.messages[1].content, rnd)
        injected.append(copy)
    ops = [parse_op({"op": "exact_dedup"}, "0"), parse_op({"op": "minhash_dedup"}, "1")]
    # copies come after all originals, so `keep: first` keeps the original of every labelled pair
    run(base + injected, ops, tmp_path / "all", RunOptions(shard_size=1000))
    kept = list(read_output(tmp_path / "all"))
    kept_injected = {s.meta["line"] for s in kept if s.meta["source"] == "injected"}
    removed_orig = {s.where for s in base} - {s.where for s in kept if s.meta["source"] != "injected"}
    # duplicates already in the alpaca demo sets (its README says there are some) are correct removals
    run(base, ops, tmp_path / "base")
    real = {s.where for s in base} - {s.where for s in read_output(tmp_path / "base")}
    near = [k for k, v in label.items() if v == "near"]
    near_recall = sum(k not in kept_injected for k in near) / len(near)
    exact_recall = sum(k not in kept_injected for k, v in label.items() if v == "exact") / (len(label) - len(near))
    removed_injected = len(label) - len(kept_injected)
    false_pos = len(removed_orig - real)
    precision = removed_injected / (removed_injected + false_pos)
    print(f"near-dup recall {near_recall:.4f} ({len(near)} injected), exact recall {exact_recall:.4f}, "
          f"precision {precision:.4f} ({false_pos} originals wrongly removed; {len(real)} real duplicates in the base)")
    assert exact_recall == 1.0
    assert near_recall >= 0.95
    assert precision >= 0.98


PII = {
    "email": ["li.wei@example.com", "john_doe+news@mail.co.uk", "a.b@sub.domain.org"],
    "phone_cn": ["13812345678", "+86 139 1234 5678", "186-0000-1234"],
    "phone_intl": ["+1 415-555-2671", "+44 20 7946 0958", "+49 30 1234567", "(415) 555-2671"],
    "id_cn": ["11010519491231002X", "440308199901010018", "320102198001011234"],
    "bank_card": ["4111 1111 1111 1111", "5500005555555559", "6222 0212 3456 7890 128"],
    "ip": ["192.168.1.10", "10.0.0.254", "8.8.8.8"],
    "passport": ["passport number E12345678", "护照号码：G87654321"],
    "medical_record": ["病历号：ZY20230001", "MRN: 00123456"],
}


def _checksum_ok(kind: str, value: str) -> bool:
    from tuneforge.curate.pii import luhn, valid_cn_id

    digits = re.sub(r"\D", "", value)
    return valid_cn_id(value) if kind == "id_cn" else luhn(digits) if kind == "bank_card" else True


# found only by `engine: presidio` (valid checksums where the format has one)
PRESIDIO_PII = {
    "iban": ["DE89 3704 0044 0532 0130 00", "GB82WEST12345698765432", "FR1420041010050500013M02606"],
    "crypto": ["1BoatSLRHtKNngkdXEeobR76b53LETtpyT", "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq"],
    "us_ssn": ["219-09-9999", "536-90-4399"],
    "uk_nhs": ["943 476 5919", "401 023 2137"],
    "mac_address": ["00:1A:2B:3C:4D:5E", "00-1a-2b-3c-4d-5e"],
}


def detector(engine: str):
    """The engine's detector for all the types it knows (the `pii` operator's default)."""
    if engine == "builtin":
        return lambda text: detect(text, list(PLACEHOLDERS))
    pytest.importorskip("presidio_analyzer", reason="needs presidio-analyzer: pip install 'tuneforge[curate]'")
    from tuneforge.curate.pii_presidio import PRESIDIO_ONLY, PresidioDetector

    return PresidioDetector([*PLACEHOLDERS, *PRESIDIO_ONLY], {})


def injected_recall(find, texts: list[str], kinds: dict[str, list[str]]) -> dict[str, float]:
    """Per type: share of 100 values, each put at a random word boundary of a random clean text, that
    `find` reports as that type."""
    rnd = random.Random(1)
    recall = {}
    for kind, values in kinds.items():
        values = [v for v in values if _checksum_ok(kind, v)]
        assert values, kind
        hits = total = 0
        for i in range(100):
            value = values[i % len(values)]
            host = rnd.choice(texts)
            cut = host.find(" ", rnd.randrange(len(host))) if " " in host else len(host)
            cut = len(host) if cut < 0 else cut
            text = f"{host[:cut]} {value} {host[cut:]}"
            target = (value.split("：")[-1].split(" ")[-1].removeprefix("MRN: ")
                      if kind in ("passport", "medical_record") else value)
            found = [sp for sp in find(text) if sp.type == kind]
            hits += any(target in sp.text or sp.text in value for sp in found)
            total += 1
        recall[kind] = hits / total
    return recall


@pytest.mark.parametrize("engine", ["builtin", "presidio"])
def test_pii_recall_per_type_and_false_positives_on_clean_text(engine):
    base = load_alpaca("alpaca_en_demo.json") + load_alpaca("alpaca_zh_demo.json")
    texts = [s.messages[0].content + "\n" + s.messages[1].content for s in base]
    kinds = PII if engine == "builtin" else {**PII, **PRESIDIO_PII}
    find = detector(engine)
    fp_rate = sum(bool(find(t)) for t in texts) / len(texts)
    recall = injected_recall(find, texts, kinds)
    print(f"{engine}: PII recall {recall}, texts flagged on clean data {fp_rate:.4f}")
    for kind in ("email", "phone_cn", "phone_intl", "id_cn", "bank_card", *PRESIDIO_PII):
        assert recall.get(kind, 1.0) >= 0.99, kind
    assert min(recall.values()) >= 0.95
    assert fp_rate < 0.005


def test_checksums_reject_lookalikes():
    types = list(PLACEHOLDERS)
    assert [sp.type for sp in detect("卡号 4111 1111 1111 1112 身份证 110105194912310021", types)] == []
    assert [sp.type for sp in detect("卡号 4111 1111 1111 1111 身份证 11010519491231002X", types)] == [
        "bank_card", "id_cn"]


@pytest.mark.parametrize("action,expected", [
    ("placeholder", "call <PHONE> or mail <EMAIL>"),
    ("mask", "call *********** or mail *************"),
])
def test_redaction(action, expected):
    op = parse_op({"op": "pii", "action": action}, "0").build()
    out = op(chat("q", "call 13812345678 or mail a@example.com"))
    assert out.messages[1].content == expected
    assert parse_op({"op": "pii", "action": "drop"}, "0").build()(chat("q", "mail a@example.com")).reason == "pii"
    custom = parse_op({"op": "pii", "patterns": {"employee": r"EMP-\d{5}"}}, "0").build()
    assert custom(chat("q", "ask EMP-12345")).messages[1].content == "ask <EMPLOYEE>"


def test_boilerplate_recall_on_injected_answers():
    base = load_alpaca("alpaca_zh_demo.json")[:100] + load_alpaca("alpaca_en_demo.json")[:100]
    prefixes = ["As an AI language model, ", "作为一个人工智能语言模型，", "As a large language model, ",
                "作为一个AI，"]
    op = parse_op({"op": "machine_text"}, "0").build()
    injected = [chat(s.messages[0].content, prefixes[i % 4] + s.messages[1].content) for i, s in enumerate(base)]
    assert sum(op(s).__class__ is not Sample for s in injected) == len(injected)
    assert sum(op(s).__class__ is not Sample for s in base) <= 2
