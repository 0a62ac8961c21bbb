"""Delivering a trained artefact elsewhere: merged into a standard HF model directory or as a clean
adapter directory (`merge`), as GGUF files for llama.cpp (`gguf`) with an Ollama Modelfile (`ollama`).
Export never serves; serving (`tuneforge.serve`) never exports."""

from tuneforge.export.gguf import GGUFReport, check_gguf_request, export_gguf, parse_gguf_types
from tuneforge.export.merge import ExportReport, export, use_template
from tuneforge.export.ollama import ollama_template, write_modelfile

__all__ = ["ExportReport", "GGUFReport", "check_gguf_request", "export", "export_gguf", "ollama_template",
           "parse_gguf_types", "use_template", "write_modelfile"]
