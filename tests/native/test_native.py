import logging

import pytest
import torch

from tuneforge.native import build as native
from tuneforge.native import lora_kernels
from tuneforge.native.fast_dropout import FastDropout

pytestmark = pytest.mark.skipif(native.library() is None, reason="no C compiler: the kernels are not built")


def test_without_a_compiler_dropout_falls_back_to_torch(monkeypatch, tmp_path, caplog):
    monkeypatch.setenv("TUNEFORGE_CACHE", str(tmp_path))
    monkeypatch.setenv("CC", str(tmp_path / "no-such-compiler"))
    native.library.cache_clear()
    try:
        with caplog.at_level(logging.WARNING):
            assert native.library() is None
        assert "CPU kernels unavailable" in caplog.text and "no-such-compiler" in caplog.text
        d = FastDropout(0.5).train()
        mask = d.mask(torch.randn(100, 8))
        assert not mask.seeded and mask.keep.dtype == torch.uint8
        assert not lora_kernels.fits(torch.randn(4, 16), 8)
    finally:
        monkeypatch.undo()
        native.library.cache_clear()
    assert native.library() is not None


def test_compiled_once_into_the_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("TUNEFORGE_CACHE", str(tmp_path))
    built = native._built()
    assert built.parent == tmp_path / "kernels" and built.suffix == ".so"
    stamp = built.stat().st_mtime_ns
    assert native._built() == built and built.stat().st_mtime_ns == stamp
    # No temporary files left behind; the library's SHA-256 is recorded beside it.
    assert sorted(p.name for p in built.parent.iterdir()) == [built.name, built.name + ".sha256"]


def test_a_library_others_could_have_written_is_not_loaded(monkeypatch, tmp_path):
    monkeypatch.setenv("TUNEFORGE_CACHE", str(tmp_path))
    built = native._built()
    assert native._checked(built) == built
    built.chmod(0o777)
    with pytest.raises(OSError, match="writable by its group or everyone"):
        native._checked(built)
    built.chmod(0o775)  # group-writable: as unsafe when the group has other members
    with pytest.raises(OSError, match="writable by its group"):
        native._checked(built)
    built.chmod(0o755)
    built.parent.chmod(0o775)
    with pytest.raises(OSError, match="writable by its group"):
        native._checked(built)
    built.parent.chmod(0o755)
    assert native._checked(built) == built


def test_a_library_that_differs_from_its_recorded_digest_is_refused_then_rebuilt(monkeypatch, tmp_path, caplog):
    monkeypatch.setenv("TUNEFORGE_CACHE", str(tmp_path))
    built = native._built()
    original = built.read_bytes()
    built.write_bytes(original[: len(original) // 2])  # truncated, as by a full disk or a kill mid-copy
    with pytest.raises(OSError, match="does not match the SHA-256"):
        native._checked(built)
    with caplog.at_level(logging.WARNING):
        assert native._built() == built
    assert "building it again" in caplog.text
    assert built.read_bytes() == original and native._checked(built) == built
