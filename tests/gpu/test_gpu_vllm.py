"""`tuneforge serve --backend vllm` on a CUDA machine with vLLM: a merged export and a LoRA adapter
answer through vLLM's OpenAI server."""

import socket
import subprocess
import time

import pytest
import torch

pytestmark = pytest.mark.gpu


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_vllm_backend_serves_the_base_and_a_lora_adapter(tmp_path):
    pytest.importorskip("vllm", reason="needs vLLM")
    openai = pytest.importorskip("openai", reason="needs the serve extra")
    from tuneforge.methods import get_method, method_config
    from tuneforge.models import load_model
    from tuneforge.serve.vllm_backend import vllm_command

    model, _ = load_model("smollm2-135m-instruct")
    cfg = method_config({"name": "lora", "r": 8})
    get_method("lora").save(get_method("lora").apply(model, cfg), tmp_path / "lora")
    port = free_port()
    argv = vllm_command("smollm2-135m-instruct", {"mine": str(tmp_path / "lora")}, host="127.0.0.1", port=port,
                        api_key="k", served_model_name="base", dtype="auto")
    server = subprocess.Popen(argv)
    try:
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="k", max_retries=0)
        deadline = time.monotonic() + 300
        while True:
            try:
                ids = [m.id for m in client.models.list().data]
                break
            except openai.APIConnectionError:
                assert time.monotonic() < deadline and server.poll() is None, "vLLM did not start"
                time.sleep(2)
        assert {"base", "mine"} <= set(ids)
        for name in ("base", "mine"):
            out = client.chat.completions.create(model=name,
                                                 messages=[{"role": "user", "content": "Capital of France?"}],
                                                 temperature=0, max_tokens=16)
            assert "Paris" in out.choices[0].message.content
    finally:
        server.terminate()
        server.wait(60)
