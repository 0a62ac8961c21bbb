"""Dataset diagnostics: what a practitioner checks before training on SFT / preference / text data,
as a dict (`diagnose`), a terminal summary (`print_summary`) and a self-contained HTML page with
SVG charts (`render_html`, no plotting library needed)."""

from __future__ import annotations

import html
import json
from collections import Counter
from collections.abc import Iterable
from typing import Any

import numpy as np

from tuneforge.curate import minhash as mh
from tuneforge.curate.dedup import KeepFacts, NearKeys, near_duplicates
from tuneforge.curate.filters import MACHINE_PHRASES, REFUSAL_PHRASES, detect_language
from tuneforge.curate.pii import PLACEHOLDERS, detect
from tuneforge.curate.text import joined_text, question_answer, resolve_fields
from tuneforge.text import is_cjk, normalise, words
from tuneforge.types import Sample

_ALL = resolve_fields(["all"])


def _hist(values: list[int], bins: int = 20) -> dict[str, Any]:
    if not values:
        return {"count": 0}
    v = np.asarray(values)
    counts, edges = np.histogram(v, bins=bins)
    return {"count": len(v), "min": int(v.min()), "mean": round(float(v.mean()), 1), "p50": int(np.percentile(v, 50)),
            "p95": int(np.percentile(v, 95)), "max": int(v.max()), "hist": counts.tolist(),
            "edges": [round(float(e), 1) for e in edges]}


def diagnose(samples: Iterable[Sample], tokenizer: str | None = None, label_field: str | None = None,
             near_threshold: float = 0.7, languages: bool = True) -> dict[str, Any]:
    """Statistics over a dataset. Near-duplicate rate uses the same MinHash machinery as curation."""
    tok = None
    if tokenizer:
        from tuneforge.models import load_tokenizer

        tok = load_tokenizer(tokenizer)
    kinds, tasks, langs, labels, roles, systems, pii = (Counter(), Counter(), Counter(), Counter(), Counter(),
                                                        Counter(), Counter())
    chars, tokens, answer_chars = [], [], []
    grams_en, grams_zh = Counter(), Counter()
    refusals = machine = json_like = json_ok = 0
    texts: list[str] = []
    refusal_keys = [p.lower() for p in REFUSAL_PHRASES]
    machine_keys = [p.lower() for p in MACHINE_PHRASES]
    for s in samples:
        text = joined_text(s, _ALL)
        texts.append(text)
        kinds[s.kind] += 1
        tasks[s.task or "-"] += 1
        chars.append(len(text))
        if tok is not None:
            tokens.append(len(tok(text, add_special_tokens=False)["input_ids"]))
        if languages and text.strip():
            langs[detect_language(text)[0]] += 1
        if label_field:
            labels[str(s.meta.get(label_field, "<missing>"))] += 1
        roles["→".join(m.role for m in s.messages) or "-"] += 1
        systems.update(m.content[:80] for m in s.messages if m.role == "system")
        pii.update(sp.type for sp in detect(text, list(PLACEHOLDERS)))
        _, answer = question_answer(s) if s.kind != "text" else ("", s.text or "")
        answer_chars.append(len(answer))
        low = answer.lower()[:300]
        refusals += any(k in low for k in refusal_keys)
        machine += any(k in answer.lower() for k in machine_keys)
        stripped = answer.strip().removeprefix("```json").removesuffix("```").strip()
        if stripped[:1] in "{[" and stripped:
            json_like += 1
            try:
                json.loads(stripped)
                json_ok += 1
            except ValueError:
                pass
        ws = [w.lower() for w in words(text)]
        if is_cjk(text):
            grams_zh.update("".join(ws[i:i + 2]) for i in range(len(ws) - 1))
        else:
            grams_en.update(" ".join(ws[i:i + 3]) for i in range(len(ws) - 2))
    n = len(texts)
    exact = len(texts) - len({normalise(t) for t in texts})
    near = 0
    if n:
        a, b = mh.permutations(128)
        sh = mh.shingle(texts)
        keys = NearKeys(mh.band_hashes(mh.signatures(sh, a, b), 32, 4), sh,
                        KeepFacts(np.zeros(n, np.int64), np.zeros(n)))
        near = int((near_duplicates([keys], near_threshold, "first") >= 0).sum())

    def rate(k: int) -> float:
        return round(k / n, 4) if n else 0.0

    return {
        "records": n, "kinds": dict(kinds), "tasks": dict(tasks.most_common()),
        "chars": _hist(chars), "tokens": _hist(tokens) if tokens else None, "answer_chars": _hist(answer_chars),
        "languages": dict(langs.most_common()), "labels": dict(labels.most_common()) if label_field else None,
        "exact_duplicate_rate": rate(exact), "near_duplicate_rate": rate(near),
        "pii_hits": dict(pii.most_common()), "refusal_rate": rate(refusals), "machine_text_rate": rate(machine),
        "empty_answer_rate": rate(sum(1 for c in answer_chars if c == 0)),
        "role_orders": dict(roles.most_common(10)), "system_prompts": len(systems),
        "top_system_prompts": dict(systems.most_common(5)),
        "json_answers": {"looks_like_json": json_like, "valid": json_ok,
                         "validity_rate": round(json_ok / json_like, 4) if json_like else None},
        "top_ngrams": {"en": dict(grams_en.most_common(15)), "zh": dict(grams_zh.most_common(15))},
    }


def print_summary(d: dict[str, Any], console: Any) -> None:
    from rich.table import Table

    t = Table(title=f"{d['records']} records", show_header=False)
    t.add_column(no_wrap=True)  # the names are short: they never wrap; long values fold, never cut to "…"
    t.add_column(overflow="fold")
    rows = [("kinds", d["kinds"]), ("tasks", d["tasks"]), ("languages", d["languages"]),
            ("chars p50 / p95 / max", f"{d['chars'].get('p50')} / {d['chars'].get('p95')} / {d['chars'].get('max')}")]
    if d["tokens"]:
        rows.append(("tokens p50 / p95 / max", f"{d['tokens']['p50']} / {d['tokens']['p95']} / {d['tokens']['max']}"))
    rows += [("exact / near duplicates", f"{d['exact_duplicate_rate']:.1%} / {d['near_duplicate_rate']:.1%}"),
             ("refusals", f"{d['refusal_rate']:.1%}"), ("machine boilerplate", f"{d['machine_text_rate']:.1%}"),
             ("empty answers", f"{d['empty_answer_rate']:.1%}"), ("PII hits", d["pii_hits"] or "none"),
             ("role orders", d["role_orders"]), ("system prompt variants", d["system_prompts"]),
             ("JSON answers valid", d["json_answers"])]
    if d["labels"]:
        rows.append(("labels", d["labels"]))
    for k, v in rows:
        t.add_row(k, str(v))
    console.print(t)


def _svg_hist(h: dict[str, Any], title: str) -> str:
    if not h or not h.get("count"):
        return ""
    counts, edges = h["hist"], h["edges"]
    w, hgt, top = 480, 160, max(counts) or 1
    bw = w / len(counts)
    bars = "".join(f'<rect x="{i * bw:.1f}" y="{hgt - c / top * hgt:.1f}" width="{bw - 1:.1f}" '
                   f'height="{c / top * hgt:.1f}" fill="#4a7bd0"><title>{edges[i]}–{edges[i + 1]}: {c}</title></rect>'
                   for i, c in enumerate(counts))
    return (f"<h3>{html.escape(title)}</h3><svg width='{w}' height='{hgt + 20}'>{bars}"
            f"<text x='0' y='{hgt + 15}' font-size='11'>{edges[0]}</text>"
            f"<text x='{w}' y='{hgt + 15}' font-size='11' text-anchor='end'>{edges[-1]}</text></svg>"
            f"<p>p50 {h['p50']}, p95 {h['p95']}, max {h['max']}</p>")


def _svg_bars(values: dict[str, int], title: str) -> str:
    if not values:
        return ""
    top = max(values.values()) or 1
    rows = "".join(f"<tr><td>{html.escape(str(k))}</td><td><svg width='300' height='12'>"
                   f"<rect width='{v / top * 300:.0f}' height='12' fill='#4a7bd0'/></svg> {v}</td></tr>"
                   for k, v in list(values.items())[:20])
    return f"<h3>{html.escape(title)}</h3><table>{rows}</table>"


def render_html(d: dict[str, Any], stats: dict[str, Any] | None = None) -> str:
    """One self-contained page: curation stats (when given) and diagnostics with charts."""
    parts = ["<!doctype html><meta charset='utf-8'><title>tuneforge data report</title>",
             "<style>body{font-family:sans-serif;max-width:900px;margin:2em auto}td{padding:2px 8px}</style>",
             f"<h1>Data report: {d['records']} records</h1>"]
    if stats:
        rejected = stats.get("rejected", {})
        parts.append(f"<h2>Curation</h2><p>{stats['records_in']} in = {stats['records_out']} kept + "
                     f"{sum(stats['removed'].values())} removed + {sum(rejected.values())} rejected by the readers</p>")
        parts.append(_svg_bars(stats["removed"], "Removed by operator / reason"))
        parts.append(_svg_bars(rejected, "Rejected by the readers, by reason"))
    summary = {k: d[k] for k in ("exact_duplicate_rate", "near_duplicate_rate", "refusal_rate", "machine_text_rate",
                                 "empty_answer_rate", "system_prompts")}
    parts.append("<h2>Summary</h2><table>" + "".join(f"<tr><td>{k}</td><td>{v}</td></tr>" for k, v in summary.items())
                 + "</table>")
    parts += [_svg_hist(d["chars"], "Length in characters"), _svg_hist(d["tokens"], "Length in tokens"),
              _svg_hist(d["answer_chars"], "Answer length in characters"), _svg_bars(d["languages"], "Languages"),
              _svg_bars(d["kinds"], "Kinds"), _svg_bars(d["tasks"], "Samples per task"),
              _svg_bars(d["labels"] or {}, "Label balance"), _svg_bars(d["pii_hits"], "PII hits"),
              _svg_bars(d["role_orders"], "Role orders"), _svg_bars(d["top_ngrams"]["en"], "Top English trigrams"),
              _svg_bars(d["top_ngrams"]["zh"], "Top Chinese bigrams")]
    parts.append(f"<h2>JSON answers</h2><p>{html.escape(json.dumps(d['json_answers']))}</p>")
    return "\n".join(p for p in parts if p)
