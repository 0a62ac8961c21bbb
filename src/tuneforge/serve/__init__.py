"""Inference and delivery: the continuously batching generation engine (`engine`, with `sampling`,
`detokenize`, `kv` and adapter `routing`), blocking helpers and resumable dataset generation
(`generate`), the OpenAI-compatible server (`server`, `protocol`) and the vLLM hand-off
(`vllm_backend`). Export lives in `tuneforge.export`."""
