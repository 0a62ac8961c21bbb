"""Documents in, overlapping token windows out.

Windows are counted in the generating model's tokens, so `chunk_tokens` is what a chunk costs in a
prompt. Each chunk's text is cut from the original by the tokenizer's character offsets, so it is the
document's exact text (no decode round trip that could mangle Chinese or whitespace).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from tuneforge.errors import TuneforgeError

TEXT_SUFFIXES = {".txt", ".md", ".markdown", ".rst"}


@dataclass
class Document:
    source: str
    text: str


@dataclass
class Chunk:
    id: int
    source: str
    start: int
    """Character offsets of the chunk in its document."""
    end: int
    text: str

    def to_dict(self) -> dict:
        return asdict(self)


def read_documents(paths: list[str]) -> list[Document]:
    """Text files (.txt, .md, .rst) are one document each; data files (jsonl, csv, parquet, ...) give
    one document per record (its `text`, or its messages joined)."""
    from tuneforge.io import read_samples

    docs: list[Document] = []
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise TuneforgeError(f"{raw}: no such file or directory")
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for f in files:
            if f.suffix.lower() in TEXT_SUFFIXES:
                docs.append(Document(str(f), f.read_text(encoding="utf-8")))
            elif not path.is_dir() or f.suffix.lower() in {".json", ".jsonl", ".csv", ".parquet"}:
                samples, _ = read_samples(str(f))
                docs += [Document(s.where, s.text if s.text is not None else "\n".join(m.content for m in s.messages))
                         for s in samples]
    return [d for d in docs if d.text.strip()]


def chunk_documents(docs: list[Document], tokenizer, chunk_tokens: int, overlap: int, *,
                    on_progress: Callable[[int, int], None] | None = None) -> list[Chunk]:
    """`on_progress(documents chunked, documents)` after each document."""
    if overlap >= chunk_tokens:
        raise TuneforgeError(f"chunk overlap ({overlap}) must be smaller than the chunk size ({chunk_tokens})")
    chunks: list[Chunk] = []
    for n, doc in enumerate(docs, 1):
        offsets = tokenizer(doc.text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
        for lo in range(0, max(len(offsets) - overlap, 1), chunk_tokens - overlap):
            window = offsets[lo:lo + chunk_tokens]
            start, end = window[0][0], window[-1][1]
            text = doc.text[start:end].strip()
            if text:
                chunks.append(Chunk(len(chunks), doc.source, start, end, text))
        if on_progress:
            on_progress(n, len(docs))
    return chunks
