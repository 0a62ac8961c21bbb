"""report.html of a generation run: the counts (in = kept + removed + failed), the reasons, what the
teacher cost, and a few kept and rejected records to read. One self-contained file, no scripts."""

from __future__ import annotations

import html
import json
from itertools import islice
from pathlib import Path
from typing import Any

from tuneforge.datagen.output import DATA, REJECTS, REPORT

EXAMPLES = 8


def _rows(pairs) -> str:
    return "".join(f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(str(v))}</td></tr>" for k, v in pairs)


def _examples(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in islice(f, EXAMPLES)]


def _pretty(row: dict[str, Any]) -> str:
    return html.escape(json.dumps(row, ensure_ascii=False, indent=1)[:3000])


def write_report(out_dir: Path, stats: dict[str, Any]) -> Path:
    usage = stats.get("usage", {})
    kept, rejects = _examples(out_dir / DATA), _examples(out_dir / REJECTS)
    body = [
        f"<h1>tuneforge data generate · {html.escape(stats['mode'])}</h1>",
        f"<p>{stats['in']} in = {stats['kept']} kept + {sum(stats['removed'].values())} removed + "
        f"{stats['failed']} failed</p>",
        "<h2>Removed, by reason</h2><table>", _rows(sorted(stats["removed"].items(), key=lambda kv: -kv[1])),
        "</table>",
        "<h2>Failed requests, by error</h2><table>", _rows(stats.get("failed_by_reason", {}).items()), "</table>",
        "<h2>Teacher usage</h2><table>", _rows(usage.items()), "</table>",
        "<h2>Run</h2><table>", _rows((k, v) for k, v in stats.items()
                                     if k not in ("removed", "usage", "failed_by_reason")), "</table>",
        f"<h2>First {len(kept)} kept records</h2>", *(f"<pre>{_pretty(r)}</pre>" for r in kept),
        f"<h2>First {len(rejects)} rejects</h2>", *(f"<pre>{_pretty(r)}</pre>" for r in rejects),
    ]
    page = ("<!doctype html><meta charset='utf-8'><title>tuneforge data generate</title><style>"
            "body{font-family:sans-serif;max-width:60rem;margin:2rem auto}td{padding:0 1rem 0 0}"
            "pre{background:#f4f4f4;padding:.5rem;white-space:pre-wrap}</style>" + "".join(body))
    path = out_dir / REPORT
    path.write_text(page, encoding="utf-8")
    return path
