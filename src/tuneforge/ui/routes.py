"""The workbench's JSON API, one group per page; each route resolves paths through `Folders` and calls
a library function (through the page modules of this package)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from tuneforge.errors import TuneforgeError

if TYPE_CHECKING:
    from tuneforge.ui.app import Workbench


class ConfigText(BaseModel):
    path: str = Field(description="The config file the text came from (relative paths are relative to its folder).")
    text: str


class JobRequest(ConfigText):
    kind: Literal["train", "compare"] = "train"


class Turn(BaseModel):
    role: Literal["system", "user", "assistant"]
    content: str


class Sampling(BaseModel):
    max_tokens: int = Field(128, ge=1, le=4096)
    temperature: float = Field(0.0, ge=0)
    top_p: float = Field(1.0, gt=0, le=1)
    seed: int | None = None


class ChatRequest(BaseModel):
    model: str = Field(description="'base' or the name of one of `adapters`.")
    adapters: dict[str, str] = Field(default_factory=dict, description="name -> run directory under the root")
    messages: list[Turn] = Field(min_length=1)
    sampling: Sampling = Field(default_factory=Sampling)
    variant: Literal["plain", "few_shot", "rag"] = "plain"
    pool: str | None = None
    index: str | None = None
    k: int = Field(4, ge=0, le=16)


class ReviewAction(BaseModel):
    reviewer: str = Field(min_length=1, max_length=100)
    candidate: int | None = Field(None, ge=0)
    text: str | None = None
    up: bool | None = None


class NewCandidate(BaseModel):
    """Where a reply written on the spot comes from: the base model, a trained run, or an endpoint."""

    source: Literal["model", "adapter", "endpoint"]
    run: str | None = Field(None, description="adapter: its run directory under the root")
    url: str | None = Field(None, description="endpoint: its base URL, e.g. http://127.0.0.1:8000/v1")
    endpoint_model: str | None = Field(None, description="endpoint: the model id to ask")
    sampling: Sampling = Field(default_factory=Sampling)


class ReviewFile(BaseModel):
    path: str
    kind: Literal["sft", "dpo", "kto"] = "dpo"


class Reply(BaseModel):
    model: str = Field(description="'base' or an adapter's name")
    source: str = Field("", description="the base model or the adapter's run directory")
    text: str


class Feedback(BaseModel):
    prompt: list[Turn] = Field(min_length=1)
    replies: list[Reply] = Field(min_length=1, max_length=4, description="every reply shown side by side")
    target: int = Field(ge=0, description="the reply judged: an index into replies")
    thumbs: Literal["up", "down"] | None = None
    better: str | None = None
    reviewer: str = Field("playground", min_length=1, max_length=100)


def router(bench: Workbench) -> APIRouter:
    from tuneforge.ui import configs, datasets, playground, runs

    api = APIRouter(prefix="/api")
    folders = bench.folders
    play = bench.playground

    @api.get("/state")
    def state() -> dict[str, Any]:
        return {"root": str(folders.root), "folders": [str(f) for f in folders.allowed], "model": bench.model}

    # --- Data ---------------------------------------------------------------------------------------

    @api.get("/files")
    def files(dir: str = ".") -> dict[str, Any]:
        folder = folders.resolve(dir)
        if not folder.is_dir():
            raise TuneforgeError(f"{dir}: not a folder")
        return {"dir": folders.relative(folder), "entries": datasets.listing(folder)}

    @api.get("/data/samples")
    def samples(path: str, model: str = "", template: str = "auto",
                train_on: Literal["assistant", "last", "all"] = "assistant", cutoff: int = 1024,
                language: str = "", task: str = "", reason: str = "", min_chars: int = 0, max_chars: int = 0,
                offset: int = 0, n: int = 10) -> dict[str, Any]:
        filters = datasets.Filters(language, task, reason, min_chars, max_chars)
        return datasets.show(folders.resolve(path), model=model or bench.model, template=template,
                             train_on=train_on, cutoff=cutoff, filters=filters, offset=max(offset, 0),
                             n=min(max(n, 1), 50))

    @api.get("/data/report")
    def report(path: str, model: str = "") -> dict[str, Any]:
        return datasets.report(folders.resolve(path), model or None)

    @api.get("/data/rejects")
    def rejects(path: str) -> dict[str, Any]:
        return datasets.rejects(folders.resolve(path))

    # --- Train / Compare ------------------------------------------------------------------------------

    @api.get("/configs")
    def config_list() -> dict[str, Any]:
        return {"configs": [folders.relative(p) for p in configs.find_configs(folders.root)]}

    @api.get("/configs/text")
    def config_text(path: str) -> dict[str, Any]:
        return {"path": path, "text": folders.resolve(path).read_text(encoding="utf-8")}

    @api.post("/configs/validate")
    def config_validate(body: ConfigText) -> dict[str, Any]:
        try:
            cfg = configs.validate(body.text, folders.resolve(body.path).parent)
        except TuneforgeError as e:
            return {"ok": False, "error": str(e)}
        return {"ok": True, "stage": cfg.train.stage, "method": cfg.method.name, "output_dir": cfg.train.output_dir,
                "compare_dir": cfg.eval.output_dir}

    @api.post("/configs/upload")
    async def config_upload(request: Request, name: str) -> dict[str, Any]:
        body = await _limited_body(request, bench.max_upload_bytes)
        safe = Path(name).name
        if not safe.endswith((".yaml", ".yml")):
            raise TuneforgeError(f"{name}: upload a .yaml or .yml config")
        out = bench.state / "uploads" / safe
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(body)
        return {"path": folders.relative(out), "text": body.decode("utf-8", errors="replace")}

    @api.post("/jobs")
    def start_job(body: JobRequest) -> dict[str, Any]:
        cfg = configs.validate(body.text, folders.resolve(body.path).parent)
        out = Path(cfg.train.output_dir if body.kind == "train" else cfg.eval.output_dir)
        run_dir = folders.resolve(out if out.is_absolute() else folders.root / out)  # results stay reachable
        saved = configs.save_for_job(cfg, bench.state / "jobs", body.path)
        return bench.jobs.start(body.kind, Path(body.path).stem, saved, run_dir).to_dict()

    @api.get("/jobs")
    def job_list() -> dict[str, Any]:
        return {"jobs": [j.to_dict() for j in bench.jobs.all()]}

    @api.get("/jobs/{job_id}")
    def job(job_id: int) -> dict[str, Any]:
        from tuneforge.ui.jobs import read_log

        j = bench.jobs.get(job_id)
        return {**j.to_dict(), "log": read_log(j), "run": folders.relative(Path(j.run_dir))}

    @api.post("/jobs/{job_id}/stop")
    def stop(job_id: int) -> dict[str, Any]:
        return bench.jobs.stop(job_id).to_dict()

    @api.post("/jobs/{job_id}/resume")
    def resume(job_id: int) -> dict[str, Any]:
        return bench.jobs.resume(job_id).to_dict()

    # --- Runs / Compare results -------------------------------------------------------------------------

    @api.get("/runs")
    def run_list(dir: str = ".") -> dict[str, Any]:
        return {"runs": [{"path": folders.relative(p), **runs.summary(p)}
                         for p in runs.find_runs(folders.resolve(dir))]}

    @api.get("/runs/curves")
    def run_curves(path: str, since: int = 0) -> dict[str, Any]:
        return runs.curves(folders.resolve(path), since)

    @api.get("/runs/details")
    def run_details(path: str) -> dict[str, Any]:
        return runs.details(folders.resolve(path))

    @api.get("/compare/results")
    def compare_results(path: str) -> dict[str, Any]:
        out = folders.resolve(path)
        summary = out / "summary.json"
        return {"summary": json.loads(summary.read_text()) if summary.exists() else None,
                "report": (out / "report.html").exists()}

    # --- Playground -----------------------------------------------------------------------------------

    @api.post("/playground/chat")
    def chat(body: ChatRequest) -> StreamingResponse:
        from tuneforge.serve.sampling import SamplingParams
        from tuneforge.types import Message

        adapters = {name: str(folders.resolve(path)) for name, path in body.adapters.items()}
        engine = play.engine(adapters)
        if body.model not in engine.model_ids:
            raise TuneforgeError(f"model {body.model!r}: choose one of {', '.join(engine.model_ids)}")
        messages = [Message(t.role, t.content) for t in body.messages]
        messages = playground.with_variant(
            messages, body.variant, k=body.k,
            pool=folders.resolve(body.pool) if body.pool else None,
            index=folders.resolve(body.index) if body.index else None,
            count_tokens=lambda m: len(engine.encode_chat(m, model=body.model)))
        params = SamplingParams(max_tokens=body.sampling.max_tokens, temperature=body.sampling.temperature,
                                top_p=body.sampling.top_p, seed=body.sampling.seed)
        # Checked before the stream starts, so a prompt too long is a 400, not a broken stream.
        engine.check(engine.encode_chat(messages, model=body.model), params, body.model)
        return StreamingResponse(playground.stream_reply(engine, messages, body.model, params),
                                 media_type="application/x-ndjson")

    @api.post("/playground/feedback")
    def feedback(body: Feedback) -> dict[str, Any]:
        from tuneforge.types import Message

        if body.target >= len(body.replies):
            raise TuneforgeError(f"target {body.target}: there are {len(body.replies)} replies")
        replies = [(r.text, {"kind": "model" if r.model == playground.BASE else "adapter",
                             "name": r.source or r.model}) for r in body.replies]
        return bench.review.feedback([Message(t.role, t.content) for t in body.prompt], replies, body.target,
                                     body.reviewer, body.thumbs, body.better)

    # --- Review ---------------------------------------------------------------------------------------

    @api.get("/review/next")
    def review_next(reviewer: str) -> dict[str, Any]:
        return bench.review.next(reviewer)

    @api.post("/review/{item_id}/candidates")  # before /{action}, which would take the word
    def review_candidate(item_id: int, body: NewCandidate) -> dict[str, Any]:
        from tuneforge.serve.sampling import SamplingParams

        prompt, tools = bench.review.prompt(item_id)
        sampling = body.sampling
        if body.source == "endpoint":
            if not body.url or not body.endpoint_model:
                raise TuneforgeError("an endpoint candidate needs url and endpoint_model")
            text = playground.endpoint_reply(body.url, body.endpoint_model, prompt, max_tokens=sampling.max_tokens,
                                             temperature=sampling.temperature)
            source = {"kind": "endpoint", "name": f"{body.endpoint_model} @ {body.url}"}
        else:
            if body.source == "adapter" and not body.run:
                raise TuneforgeError("an adapter candidate needs run: a trained run directory under the root")
            adapters = {"adapter": str(folders.resolve(body.run))} if body.source == "adapter" and body.run else {}
            engine = play.engine(adapters)
            model = "adapter" if adapters else playground.BASE
            params = SamplingParams(max_tokens=sampling.max_tokens, temperature=sampling.temperature,
                                    top_p=sampling.top_p, seed=sampling.seed)
            text = engine.complete(engine.encode_chat(prompt, tools, model=model), params, model=model).text
            source = {"kind": body.source, "name": body.run or play.model}
        return bench.review.add_reply(item_id, text, source)

    @api.post("/review/{item_id}/{action}")
    def review_action(item_id: int, action: Literal["edit", "choose", "thumb", "note", "skip", "done"],
                      body: ReviewAction) -> dict[str, Any]:
        return bench.review.act(item_id, body.reviewer, action, body.candidate, body.text, body.up)

    @api.post("/review/import")
    def review_import(body: ReviewFile) -> dict[str, Any]:
        return bench.review.import_file(folders.resolve(body.path))

    @api.post("/review/export")
    def review_export(body: ReviewFile) -> dict[str, Any]:
        out = folders.resolve(body.path)
        return {**bench.review.export(body.kind, out), "path": folders.relative(out)}

    return api


async def _limited_body(request: Request, limit: int) -> bytes:
    """The request body, refused (413) past `limit` bytes whether or not Content-Length says so."""
    from starlette.exceptions import HTTPException

    declared = request.headers.get("content-length")
    if declared is not None and int(declared) > limit:
        raise HTTPException(413, f"upload of {declared} bytes exceeds the limit of {limit}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, f"upload exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
