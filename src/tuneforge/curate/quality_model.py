"""A learned quality filter: the evaluation pipeline. Label a small set good or bad (by hand, or with
`llm_score` on a sample), fit a light classifier on it, read its held-out precision, recall and AUC,
then score and filter a large set with no LLM call.

The classifier is logistic regression (scikit-learn) over sentence embeddings of the bundled MiniLM
(offline): the reply's embedding, its element-wise product with the prompt's embedding and their
cosine similarity, so that it can learn both how a good reply reads and whether it answers its prompt.

A fitted model is a directory: `quality_model.json` (embedding model, threshold, held-out metrics, what
it was trained on) and `weights.safetensors` (the coefficients). Loading it reads numbers only: no
pickle, so a model from elsewhere cannot run code.

    model = fit_quality_model(samples, labels)     # held-out metrics in model.metrics
    model.save("quality/")
    QualityModel.load("quality/").predict(samples)  # P(good) per sample

In a recipe: `{op: quality_model, path: quality/, threshold: 0.5}` keeps records with P(good) at or
above the threshold and writes `meta["quality"]`.
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field

from tuneforge.constants import EMBEDDING_MODEL
from tuneforge.curate.base import Drop, OpConfig, register, require
from tuneforge.curate.llm_score import split_reply
from tuneforge.embedding import load_encoder
from tuneforge.errors import ConfigError, DataError, TuneforgeError
from tuneforge.types import Sample

CONFIG, WEIGHTS = "quality_model.json", "weights.safetensors"
FORMAT = 1
FEATURES = "reply, prompt*reply, cos(prompt, reply)"
MIN_PER_CLASS = 10
MAX_CHARS = 2000
OnProgress = Callable[[str, int, int], None]

_GOOD = {"good", "true", "yes", "1", "pos", "positive", "keep"}
_BAD = {"bad", "false", "no", "0", "neg", "negative", "drop"}


@dataclass
class LabelCounts:
    good: int = 0
    bad: int = 0
    unlabelled: int = 0
    """Records with no label (or one that is neither good nor bad): left out of the fit, counted."""


def labels_of(samples: Sequence[Sample], key: str = "label", min_score: float | None = None
              ) -> tuple[list[Sample], list[bool], LabelCounts]:
    """The labelled samples and their labels (True: good). A label is `meta[key]` or `meta["extra"][key]`
    (a boolean, or good / bad, true / false, 1 / 0), or, with `min_score`, the mean of an `llm_score`
    run (`meta["llm_score"]["mean"]`): good when at least `min_score`."""
    kept, labels, counts = [], [], LabelCounts()
    for s in samples:
        label = _score_label(s, min_score) if min_score is not None else _label(s, key)
        if label is None:
            counts.unlabelled += 1
            continue
        kept.append(s)
        labels.append(label)
        if label:
            counts.good += 1
        else:
            counts.bad += 1
    return kept, labels, counts


def _label(sample: Sample, key: str) -> bool | None:
    extra = sample.meta.get("extra")
    value = sample.meta.get(key, extra.get(key) if isinstance(extra, dict) else None)
    if isinstance(value, bool):
        return value
    word = str(value).strip().lower() if value is not None else ""
    return True if word in _GOOD else False if word in _BAD else None


def _score_label(sample: Sample, min_score: float) -> bool | None:
    result = sample.meta.get("llm_score")
    mean = result.get("mean") if isinstance(result, dict) else None
    return None if not isinstance(mean, int | float) else mean >= min_score


def features(samples: Sequence[Sample], embedding: str = EMBEDDING_MODEL, *, device: str = "cpu",
             batch_size: int = 64, on_progress: OnProgress | None = None) -> np.ndarray:
    """(N, 2E + 1) float32: reply embedding, prompt * reply, cosine similarity (embeddings normalised)."""
    require("sentence_transformers", "the quality model's embeddings")
    encoder, _ = load_encoder(embedding, device)
    prompts, replies = zip(*(_texts(s) for s in samples)) if samples else ((), ())
    texts = [t[:MAX_CHARS] for t in (*prompts, *replies)]  # the encoder reads 256 tokens at most anyway
    vectors = []
    for start in range(0, len(texts), batch_size):
        vectors.append(encoder.encode(texts[start:start + batch_size], normalize_embeddings=True,
                                      convert_to_numpy=True, show_progress_bar=False))
        if on_progress:
            on_progress("embedding", min(start + batch_size, len(texts)), len(texts))
    if not vectors:
        return np.zeros((0, 0), np.float32)
    matrix = np.concatenate(vectors).astype(np.float32)
    p, r = matrix[: len(samples)], matrix[len(samples):]
    p = p * np.array([bool(t.strip()) for t in prompts], np.float32)[:, None]  # no prompt: no relevance terms
    return np.concatenate([r, p * r, (p * r).sum(axis=1, keepdims=True)], axis=1)


def _texts(sample: Sample) -> tuple[str, str]:
    if sample.kind == "text":
        return "", sample.text or ""
    prompt, reply = split_reply(sample)
    return "\n".join(m.content for m in prompt if m.role in ("system", "user")), "\n".join(m.content for m in reply)


@dataclass
class QualityModel:
    coef: np.ndarray
    """(2E + 1,) logistic regression weights over `features`."""
    intercept: float
    embedding: str = EMBEDDING_MODEL
    threshold: float = 0.5
    """P(good) at or above which a record is kept, unless the recipe sets its own."""
    metrics: dict[str, Any] = field(default_factory=dict)
    """Held-out precision, recall, AUC, accuracy and the split's sizes."""
    trained_on: dict[str, Any] = field(default_factory=dict)

    def predict_features(self, x: np.ndarray) -> np.ndarray:
        if x.shape[1] != self.coef.shape[0]:
            raise TuneforgeError(f"the quality model expects {self.coef.shape[0]} features, got {x.shape[1]}: "
                                 f"was it fitted with another embedding model than {self.embedding!r}?")
        return 1.0 / (1.0 + np.exp(-(x @ self.coef + self.intercept)))

    def predict(self, samples: Sequence[Sample], *, device: str = "cpu",
                on_progress: OnProgress | None = None) -> np.ndarray:
        """P(good) for each sample."""
        return self.predict_features(features(samples, self.embedding, device=device, on_progress=on_progress))

    def save(self, directory: str | Path) -> Path:
        from safetensors.numpy import save_file

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        save_file({"coef": self.coef.astype(np.float32), "intercept": np.array([self.intercept], np.float32)},
                  str(directory / WEIGHTS))
        config = {"format": FORMAT, "embedding": self.embedding, "features": FEATURES, "threshold": self.threshold,
                  "metrics": self.metrics, "trained_on": self.trained_on}
        (directory / CONFIG).write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> QualityModel:
        from safetensors.numpy import load_file

        directory = Path(directory)
        if not (directory / CONFIG).is_file() or not (directory / WEIGHTS).is_file():
            raise ConfigError(f"{directory}: not a quality model (it needs {CONFIG} and {WEIGHTS}; "
                              "write one with `tuneforge data fit-quality`)")
        config = json.loads((directory / CONFIG).read_text(encoding="utf-8"))
        if config.get("format") != FORMAT or config.get("features") != FEATURES:
            raise ConfigError(f"{directory / CONFIG}: format {config.get('format')!r} with features "
                              f"{config.get('features')!r}; this tuneforge reads format {FORMAT} ({FEATURES})")
        weights = load_file(str(directory / WEIGHTS))
        return cls(weights["coef"], float(weights["intercept"][0]), config["embedding"], float(config["threshold"]),
                   config.get("metrics", {}), config.get("trained_on", {}))


def fit_quality_model(samples: Sequence[Sample], labels: Sequence[bool], *, test_fraction: float = 0.2,
                      seed: int = 0, embedding: str = EMBEDDING_MODEL, regularisation: float = 1.0,
                      device: str = "cpu", on_progress: OnProgress | None = None) -> QualityModel:
    """Fit on a stratified `1 - test_fraction` of the labelled samples and measure on the rest. The
    model returned is the one measured: its metrics describe it, not a refit on everything."""
    require("sklearn", "the quality model's classifier")
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, precision_score, recall_score, roc_auc_score
    from sklearn.model_selection import train_test_split

    counts = Counter(bool(v) for v in labels)
    if min(counts[True], counts[False]) < MIN_PER_CLASS:
        raise DataError("labels", f"{counts[True]} good and {counts[False]} bad examples: fitting and measuring "
                                  f"a quality model needs at least {MIN_PER_CLASS} of each")
    x = features(samples, embedding, device=device, on_progress=on_progress)
    y = np.array([bool(v) for v in labels])
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=test_fraction, random_state=seed, stratify=y)
    classifier = LogisticRegression(C=regularisation, class_weight="balanced", max_iter=2000)
    classifier.fit(x_train, y_train)
    model = QualityModel(classifier.coef_[0].astype(np.float32), float(classifier.intercept_[0]), embedding)
    p = model.predict_features(x_test)
    predicted = p >= model.threshold
    model.metrics = {"precision": float(precision_score(y_test, predicted, zero_division=0)),
                     "recall": float(recall_score(y_test, predicted, zero_division=0)),
                     "auc": float(roc_auc_score(y_test, p)), "accuracy": float(accuracy_score(y_test, predicted)),
                     "train": int(len(y_train)), "test": int(len(y_test)), "test_good": int(y_test.sum())}
    model.trained_on = {"good": counts[True], "bad": counts[False], "test_fraction": test_fraction, "seed": seed,
                        "regularisation": regularisation}
    return model


@register
class QualityModelFilter(OpConfig):
    """Keep records a fitted quality model scores at or above a threshold; no LLM call."""

    op: Literal["quality_model"] = "quality_model"
    path: Path
    """A model directory written by `tuneforge data fit-quality` (or `QualityModel.save`)."""
    threshold: float | None = Field(None, ge=0, le=1)
    """P(good) below which records are removed (reason low_quality); default: the model's own."""
    device: str = "cpu"
    requires = ("sentence_transformers", "sklearn")

    def build(self) -> _QualityModelFilter:
        return _QualityModelFilter(self)


class _QualityModelFilter:
    def __init__(self, cfg: QualityModelFilter):
        self.cfg, self.name = cfg, cfg.label
        self.model = QualityModel.load(cfg.path)
        self.threshold = self.model.threshold if cfg.threshold is None else cfg.threshold

    def __call__(self, sample: Sample) -> Sample | Drop:
        p = float(self.model.predict([sample], device=self.cfg.device)[0])
        if p < self.threshold:
            return Drop("low_quality", f"P(good) {p:.3f} < {self.threshold:g}")
        return dataclasses.replace(sample, meta={**sample.meta, "quality": round(p, 4)})
