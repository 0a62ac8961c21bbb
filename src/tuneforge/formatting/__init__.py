"""Chat templates and tokenisation with loss masks.

    template = load_template(cfg.template, tokenizer)          # registry: auto + built-ins
    text = prompt_text(template, messages)                      # for generation
    ds, stats = tokenize_samples(samples, tokenizer, cfg.template)   # parallel, cached
    ds["input_ids"][0], ds["labels"][0]                         # labels: -100 = no loss
"""

from tuneforge.constants import IGNORE
from tuneforge.formatting.base import ChatTemplate, Segment, SpecialTokens, TemplateError, prompt_text
from tuneforge.formatting.builtin import BUILTIN_TEMPLATES, BuiltinTemplate, Format, ToolFormat
from tuneforge.formatting.dataset import (
    LM_COLUMNS,
    PAIR_COLUMNS,
    Ragged,
    Reject,
    TokenizedDataset,
    TokenizeStats,
    tokenize_samples,
)
from tuneforge.formatting.encode import REASONS, EncodedLM, EncodedPair, Encoder, SampleRejected
from tuneforge.formatting.jinja import JinjaSpec, JinjaTemplate
from tuneforge.formatting.templates import (
    TemplateSpec,
    load_template,
    register_template,
    resolve_template,
    template_names,
    template_specs,
    tool_templates,
)

__all__ = [
    "BUILTIN_TEMPLATES", "IGNORE", "LM_COLUMNS", "PAIR_COLUMNS", "REASONS", "BuiltinTemplate", "ChatTemplate",
    "EncodedLM", "EncodedPair", "Encoder", "Format", "JinjaSpec", "JinjaTemplate", "Ragged", "Reject",
    "SampleRejected", "Segment", "SpecialTokens", "TemplateError", "TemplateSpec", "TokenizeStats",
    "TokenizedDataset", "ToolFormat", "load_template", "prompt_text", "register_template", "resolve_template",
    "template_names", "template_specs", "tokenize_samples", "tool_templates",
]
