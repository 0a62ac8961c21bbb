"""A merged Llama-architecture HF directory → single-file GGUF (f16 or q8_0) plus an Ollama Modelfile,
each file then reloaded through transformers and compared with the merged model.

The layout follows llama.cpp's own converter (`convert_hf_to_gguf.py`; for SmolLM2-135M every tensor
comes out byte-identical to its f16 and q8_0 output), which transformers' GGUF loader undoes: tensor
names from gguf-py's name map (the one the loader maps back with), Q and K rows permuted into
llama.cpp's rotary layout, no `output.weight` when the embeddings are tied, norms and other 1-D
tensors in F32, and Q8_0 only for rows that split into whole 32-value blocks (f16 otherwise). The
tokenizer goes in as llama.cpp's byte-level BPE ("gpt2") vocabulary, merges and special ids.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tuneforge.config import TemplateConfig
from tuneforge.errors import TuneforgeError

GGUF_TYPES = ("f16", "q8_0")
GGUF_DIR = "gguf"
"""Subdirectory of the export that holds the .gguf files and the Modelfile, apart from the HF files."""


@dataclass(frozen=True)
class GGUFCheck:
    path: Path
    max_abs_logit_diff: float
    relative_logit_diff: float
    """max |difference| / max |merged model's logit|, on the probe."""
    tokenizer_matches: bool

    def __str__(self) -> str:
        ids = "same ids" if self.tokenizer_matches else "DIFFERENT ids"
        return (f"{self.path}: max |logit difference| vs the merged model = {self.max_abs_logit_diff:.3g} "
                f"({self.relative_logit_diff:.2%} of the largest logit); tokenizer: {ids}")


@dataclass(frozen=True)
class GGUFReport:
    checks: tuple[GGUFCheck, ...]
    modelfile: Path
    template_source: str | None
    """The chat template the Modelfile renders, or None when it has no TEMPLATE."""

    def __str__(self) -> str:
        lines = [str(c) for c in self.checks]
        if self.template_source is None:
            lines.append(f"warning: {self.modelfile} has no TEMPLATE: the chat template is a Jinja template "
                         "tuneforge cannot translate to Ollama's Go templates; write one by hand, or Ollama "
                         "will prompt the model without its chat markup")
        else:
            lines.append(f"{self.modelfile}: TEMPLATE from the chat template {self.template_source}; "
                         f"to use it: ollama create NAME -f {self.modelfile}")
        return "\n".join(lines)


def parse_gguf_types(values: Sequence[str]) -> list[str]:
    """`["f16", "q8_0"]` from repeated and/or comma-separated values, in order, without repeats."""
    types = [t.strip().lower() for value in values for t in value.split(",") if t.strip()]
    for t in types:
        if t not in GGUF_TYPES:
            raise TuneforgeError(f"--gguf: unknown GGUF type '{t}'; choose from {', '.join(GGUF_TYPES)}")
    return list(dict.fromkeys(types))


def check_gguf_request(model: str, adapter: Path, merge: bool) -> None:
    """Refuse before anything is written: a GGUF holds one whole Llama model, a full fine-tune or an
    adapter merged into its base."""
    from transformers import AutoConfig

    from tuneforge.methods.artefact import method_of
    from tuneforge.models import resolve_model_path

    method = method_of(adapter)
    if method.mergeable and not method.writes_whole_model and not merge:
        raise TuneforgeError(f"{adapter}: --gguf needs a merged model; add --merge to fold the {method.name} "
                             "adapter into the base weights")
    if not method.mergeable:
        raise TuneforgeError(f"{adapter}: a {method.name} artefact cannot be merged into the base weights, and a "
                             "GGUF file holds one merged model; export it without --gguf (an adapter directory)")
    source = adapter if method.writes_whole_model else Path(resolve_model_path(model))
    if (source / "config.json").is_file():  # a hub id is checked once it is loaded
        _check_llama(AutoConfig.from_pretrained(source), source)


# --- the model ---------------------------------------------------------------------------------

def _check_llama(config: Any, model_dir: Path) -> None:
    if config.model_type != "llama":
        raise TuneforgeError(f"{model_dir}: GGUF export supports Llama-architecture models, "
                             f"this one is '{config.model_type}'")
    if getattr(config, "attention_bias", False) or getattr(config, "mlp_bias", False):
        raise TuneforgeError(f"{model_dir}: Llama with bias terms cannot be written to GGUF by tuneforge "
                             "(transformers' GGUF loader would drop them)")
    rope = getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling", None) or {}
    if rope.get("rope_type", rope.get("type", "default")) != "default":
        raise TuneforgeError(f"{model_dir}: RoPE scaling '{rope.get('rope_type')}' is not supported by "
                             "tuneforge's GGUF export")


def _rope_theta(config: Any) -> float:
    rope = getattr(config, "rope_parameters", None) or {}
    return float(rope.get("rope_theta", getattr(config, "rope_theta", 10000.0)))


def _head_dim(config: Any) -> int:
    return getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads


def _permute(w: np.ndarray, heads: int) -> np.ndarray:
    """llama.cpp's rotary layout: per head, the two halves of the rotated dimensions interleaved
    (transformers' GGUF loader reverses exactly this)."""
    return w.reshape(heads, 2, w.shape[0] // heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _tensors(model: Any) -> Iterator[tuple[str, np.ndarray]]:
    """(GGUF name, float32 array) for every weight, Q/K permuted, the tied head left out."""
    import gguf

    config = model.config
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, config.num_hidden_layers)
    for hf_name, tensor in model.state_dict().items():
        if hf_name == "lm_head.weight" and config.tie_word_embeddings:
            continue  # llama.cpp uses token_embd as the output matrix when output.weight is absent
        name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if name is None:
            raise TuneforgeError(f"{model.name_or_path}: no GGUF name for tensor {hf_name}")
        data = tensor.detach().float().numpy()
        if name.endswith("attn_q.weight"):
            data = _permute(data, config.num_attention_heads)
        elif name.endswith("attn_k.weight"):
            data = _permute(data, config.num_key_value_heads)
        yield name, data


def _encoded(name: str, data: np.ndarray, qtype: str) -> tuple[np.ndarray, Any]:
    """The array to store and its GGML type."""
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, quants

    if data.ndim == 1:  # norms: llama.cpp keeps them F32 in every file type
        return data.astype(np.float32), GGMLQuantizationType.F32
    block = GGML_QUANT_SIZES[GGMLQuantizationType.Q8_0][0]
    if qtype == "q8_0" and data.shape[-1] % block == 0:
        return quants.quantize(data, GGMLQuantizationType.Q8_0), GGMLQuantizationType.Q8_0
    return data.astype(np.float16), GGMLQuantizationType.F16


def _add_hparams(writer: Any, config: Any, name: str, qtype: str) -> None:
    from gguf import GGML_QUANT_VERSION, LlamaFileType

    writer.add_type("model")
    writer.add_name(name)
    writer.add_file_type(LlamaFileType.MOSTLY_Q8_0 if qtype == "q8_0" else LlamaFileType.MOSTLY_F16)
    writer.add_quantization_version(GGML_QUANT_VERSION)
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads)
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_rope_freq_base(_rope_theta(config))
    writer.add_rope_dimension_count(_head_dim(config))
    writer.add_key_length(_head_dim(config))
    writer.add_value_length(_head_dim(config))
    writer.add_vocab_size(config.vocab_size)


# --- the tokenizer -----------------------------------------------------------------------------

def _pre_tokenizer(backend: dict[str, Any], model_dir: Path) -> str:
    """llama.cpp's name for how text is split before BPE (`tokenizer.ggml.pre`)."""
    from transformers.integrations.gguf.gguf_tokenizer_mapping import GGUF_PRE_TOKENIZER_SPLITS

    pre = backend.get("pre_tokenizer") or {}
    steps = pre.get("pretokenizers", [pre]) if pre.get("type") == "Sequence" else [pre]
    kinds = [s.get("type") for s in steps]
    if kinds == ["ByteLevel"] and steps[0].get("use_regex", True):
        return "gpt-2"  # llama.cpp refuses "gpt2" here (that spelling names the tokenizer model)
    if kinds == ["Digits", "ByteLevel"] and steps[0].get("individual_digits"):
        return "smollm"  # StarCoder-style: digits one by one, then GPT-2's split
    if kinds == ["Split", "ByteLevel"]:
        regex = steps[0].get("pattern", {}).get("Regex")
        for name, split in GGUF_PRE_TOKENIZER_SPLITS.items():
            if split == regex:
                return name
    raise TuneforgeError(f"{model_dir}: the tokenizer's pre-tokenizer ({kinds}) has no llama.cpp name "
                         "tuneforge knows; GGUF export supports GPT-2, SmolLM, Llama 3 and Qwen2-style splits")


def _vocab(tokenizer: Any, vocab_size: int) -> tuple[list[str], list[int]]:
    """Tokens by id and their llama.cpp types; ids the tokenizer lacks are padding (`[PADn]`)."""
    from gguf import TokenType

    by_id = {i: t for t, i in tokenizer.get_vocab().items()}
    added = tokenizer.added_tokens_decoder
    tokens, types = [], []
    for i in range(vocab_size):
        if i not in by_id:
            tokens.append(f"[PAD{i}]")
            types.append(TokenType.UNUSED)
        else:
            tokens.append(by_id[i])
            types.append(TokenType.NORMAL if i not in added
                         else TokenType.CONTROL if added[i].special else TokenType.USER_DEFINED)
    return tokens, types


def _chat_template(tokenizer: Any) -> str | None:
    template = tokenizer.chat_template
    return template.get("default") if isinstance(template, dict) else template


def runtime_adds_bos(tokenizer: Any) -> bool:
    """Whether plain encoding puts BOS first: the GGUF's add_bos_token, so llama.cpp does the same."""
    return tokenizer.bos_token_id is not None and tokenizer("a").input_ids[:1] == [tokenizer.bos_token_id]


def _add_tokenizer(writer: Any, tokenizer: Any, vocab_size: int, model_dir: Path) -> None:
    backend = json.loads(tokenizer.backend_tokenizer.to_str())
    model = backend.get("model", {})
    if model.get("type") != "BPE" or "ByteLevel" not in json.dumps(backend.get("pre_tokenizer")):
        raise TuneforgeError(f"{model_dir}: GGUF export supports byte-level BPE (GPT-2 style) tokenizers; "
                             f"this one is {model.get('type')}")
    if len(tokenizer) > vocab_size:
        raise TuneforgeError(f"{model_dir}: the tokenizer has {len(tokenizer)} tokens but the model only "
                             f"{vocab_size} embeddings")
    tokens, types = _vocab(tokenizer, vocab_size)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(_pre_tokenizer(backend, model_dir))
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges([m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])])
    ids = {"bos": tokenizer.bos_token_id, "eos": tokenizer.eos_token_id, "unk": tokenizer.unk_token_id,
           "pad": tokenizer.pad_token_id}
    for kind, token_id in ids.items():
        if token_id is not None:
            getattr(writer, f"add_{kind}_token_id")(token_id)
    writer.add_add_bos_token(runtime_adds_bos(tokenizer))
    if (template := _chat_template(tokenizer)) is not None:
        writer.add_chat_template(template)


def write_gguf(model: Any, tokenizer: Any, out: Path, qtype: str, model_dir: Path) -> Path:
    """One GGUF file from a loaded float32 Llama and its tokenizer; written to a temp file first,
    so an interrupted export leaves no half-written model behind."""
    import gguf

    _check_llama(model.config, model_dir)
    tmp = Path(tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.")[1])
    try:
        writer = gguf.GGUFWriter(tmp, "llama")
        _add_hparams(writer, model.config, model_dir.name, qtype)
        _add_tokenizer(writer, tokenizer, model.config.vocab_size, model_dir)
        for name, data in _tensors(model):
            stored, ggml_type = _encoded(name, data, qtype)
            writer.add_tensor(name, stored, raw_dtype=ggml_type)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        tmp.rename(out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return out


# --- the check and the whole export ------------------------------------------------------------

def _logits(model: Any, ids: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return model(input_ids=ids).logits.float()  # (1, T, V)


def check_gguf(path: Path, expected: torch.Tensor, ids: torch.Tensor, probe: str) -> GGUFCheck:
    """Reload `path` as a user of transformers would (de-quantised to float32) and compare."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    reloaded = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
    diff = (_logits(reloaded, ids) - expected).abs().max().item()
    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    same_ids = tokenizer(probe, add_special_tokens=False).input_ids == ids[0].tolist()
    return GGUFCheck(path, diff, diff / expected.abs().max().item(), same_ids)


def export_gguf(model_dir: str | Path, qtypes: Sequence[str], *, template: TemplateConfig | str = "auto",
                out_dir: str | Path | None = None) -> GGUFReport:
    """`model-<type>.gguf` for each type and a `Modelfile` (FROM the first type) in `out_dir`
    (default: `model_dir/gguf`), each GGUF checked against `model_dir` on a probe conversation.
    `template` is the one the Modelfile renders, the GGUF carries (llama.cpp's server and chat read
    it) and the probe uses; "auto" keeps the tokenizer's own (in an export, the one the run trained with)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tuneforge.export.merge import PROBE, use_template
    from tuneforge.export.ollama import ollama_template, write_modelfile
    from tuneforge.formatting import load_template, prompt_text

    model_dir = Path(model_dir)
    out_dir = Path(out_dir) if out_dir is not None else model_dir / GGUF_DIR
    template = TemplateConfig(name=template) if isinstance(template, str) else template
    if not qtypes:
        raise TuneforgeError("no GGUF type requested; choose from " + ", ".join(GGUF_TYPES))
    if not (model_dir / "config.json").is_file():
        raise TuneforgeError(f"{model_dir}: not a Hugging Face model directory (no config.json)")
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    chat = load_template(template, tokenizer)
    embedded = AutoTokenizer.from_pretrained(model_dir)  # carries `template` as its Jinja chat template
    use_template(embedded, template)

    probe = prompt_text(chat, PROBE)
    ids = torch.tensor([tokenizer(probe, add_special_tokens=False).input_ids])  # (1, T)
    expected = _logits(model, ids)  # (1, T, V)
    out_dir.mkdir(parents=True, exist_ok=True)
    checks = []
    for qtype in qtypes:
        path = write_gguf(model, embedded, out_dir / f"model-{qtype}.gguf", qtype, model_dir)
        checks.append(check_gguf(path, expected, ids, probe))

    ollama = ollama_template(chat, tokenizer, runtime_adds_bos=runtime_adds_bos(tokenizer), system=template.system)
    modelfile = write_modelfile(out_dir / "Modelfile", checks[0].path.name, ollama)
    return GGUFReport(tuple(checks), modelfile, ollama.source if ollama else None)
