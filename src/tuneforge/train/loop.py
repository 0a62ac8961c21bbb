"""The training loop: one function that reads top to bottom.

forward → summed loss over labelled tokens → scale by the step's token count → backward → clip →
step → zero_grad → log; with evaluation, checkpoints and resumption around it.
"""

from __future__ import annotations

import math
import signal
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from tuneforge.config import TrainConfig
from tuneforge.constants import IGNORE
from tuneforge.errors import TuneforgeError
from tuneforge.train.batching import Batch
from tuneforge.train.checkpoint import TrainState, load_checkpoint, pick_checkpoint, remove_leftovers, save_checkpoint
from tuneforge.train.schedule import make_scheduler, set_peak


@dataclass
class LoopResult:
    state: TrainState
    history: list[dict] = field(default_factory=list)
    stopped_early: bool = False
    interrupted: bool = False


def decay_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """AdamW groups: no decay on biases, norms and embeddings (1-D tensors or embedding tables)."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim < 2 or "embed" in name or "norm" in name else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def add_neftune(model: nn.Module, alpha: float) -> torch.utils.hooks.RemovableHandle:
    """NEFTune (Jain et al. 2023): uniform noise of scale alpha / sqrt(T * d) on input embeddings,
    in training mode only."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model

    def hook(module, args, output):  # output (B, T, d)
        if module.training:
            scale = alpha / math.sqrt(output.shape[1] * output.shape[2])
            output = output + torch.zeros_like(output).uniform_(-scale, scale)
        return output

    return base.get_input_embeddings().register_forward_hook(hook)


@torch.no_grad()
def evaluate(loss_fn: nn.Module, batches: Sequence[Batch], device: torch.device) -> tuple[float, int]:
    """Mean token loss over `batches` (weights of every labelled token equal)."""
    loss_fn.eval()
    total, count = 0.0, 0
    for b in batches:
        s, n = loss_fn(**b.to(device))
        total, count = total + float(s), count + n
    loss_fn.train()
    return (total / count if count else float("nan")), count


def step_slice(n_batches: int, steps: int, k: int, per_step: int, world: int) -> slice:
    """The micro-batches of step `k` of an epoch of `n_batches`, where every epoch has `steps` steps (the
    count made from the first epoch). `per_step` each, the last step taking what is left; but packing
    can give a later epoch more or fewer micro-batches than the first, and then `per_step` slices would
    skip the extra ones or leave the last steps empty (an optimizer step on no data: Adam's momentum
    and weight decay still move the weights). Such an epoch spreads its micro-batches evenly over the
    same steps instead, where each step still gets one per process. (Fewer than `world` left over is
    the first epoch's case under DDP: those are left out, as `train_loop` says.)"""
    if (steps - 1) * per_step < n_batches < steps * per_step + world or n_batches // steps < world:
        return slice(k * per_step, (k + 1) * per_step)
    return slice(k * n_batches // steps, (k + 1) * n_batches // steps)


def train_loop(
    model: nn.Module,
    loss_fn: nn.Module,
    batches_of: Callable[[int], Sequence[Batch]],
    cfg: TrainConfig,
    *,
    run_dir: Path | None,
    eval_batches: dict[str, Sequence[Batch]] | None = None,
    accelerator=None,
    on_log: Callable[[dict], None] | None = None,
    on_best: Callable[[], None] | None = None,
    fingerprint: dict | None = None,
    resume_from: Path | None = None,
    started: float | None = None,
) -> LoopResult:
    """Train `model` in place; returns the final state and the logged history.

    `loss_fn(**batch.tensors)` returns (summed loss, units summed over) — `CausalLMLoss` for SFT and
    pre-training, `DPOLoss` for preference pairs; `batches_of(epoch)` gives that epoch's micro-batches,
    a pure function of the epoch so that resumption replays the same data. `eval_batches` maps a name
    ("val", or one per task) to held-out batches; `on_best` runs when the validation loss improves.
    `fingerprint` is stored in every checkpoint; `resume_from` is a checkpoint already picked and
    verified (else `cfg.resume` is resolved here); `started` (time.time()) is when this segment of the
    run began, for its cost."""
    started = started or time.time()
    accelerator = accelerator or _accelerator(cfg, on_cpu=next(model.parameters()).device.type == "cpu")
    torch.manual_seed(cfg.seed)
    if cfg.gradient_checkpointing:
        enable_activation_checkpointing(model)
        if hasattr(model, "enable_input_require_grads"):
            model.enable_input_require_grads()
    noise = add_neftune(model, cfg.neftune_alpha) if cfg.neftune_alpha else None

    world, rank = accelerator.num_processes, accelerator.process_index
    per_step = cfg.grad_accum * world  # micro-batches consumed by one optimizer step

    first_epoch = batches_of(0)  # built once: the step count needs it, and so does the first epoch
    # An epoch's last step takes the micro-batches left over when they are fewer than `per_step`, so
    # none is skipped; under DDP only when every process gets one (a process without one would leave
    # the others waiting for its gradients), else they are left out and said so.
    steps_per_epoch, left = divmod(len(first_epoch), per_step)
    if left >= world:
        steps_per_epoch += 1
    elif left:
        accelerator.print(f"warning: {left} micro-batch(es) of each epoch left out: fewer than the {world} processes")
    if steps_per_epoch == 0:
        raise TuneforgeError(f"too little data for one optimizer step: {len(first_epoch)} micro-batches, "
                             f"need one per process ({world})")
    total_steps = cfg.max_steps or max(1, math.ceil(cfg.epochs * steps_per_epoch))

    optimizer = torch.optim.AdamW(decay_groups(model, cfg.weight_decay), lr=cfg.learning_rate)
    scheduler = make_scheduler(optimizer, total_steps, cfg.warmup_ratio, cfg.scheduler)
    loss_fn, optimizer = accelerator.prepare(loss_fn, optimizer)
    device = accelerator.device
    _map_large_allocations(device)
    eval_batches = {name: b for name, b in (eval_batches or {}).items() if b}

    state = TrainState()
    if resume_from is None:
        if run_dir is not None and accelerator.is_main_process:
            remove_leftovers(run_dir)
        resume_from = pick_checkpoint(cfg.resume, run_dir, move_aside=accelerator.is_main_process)
    if resume_from is not None:
        state = load_checkpoint(resume_from, model, optimizer, scheduler)
        if state.step > total_steps:
            raise TuneforgeError(f"{resume_from} is at step {state.step}, past this run's {total_steps} steps "
                                 f"(train.max_steps / train.epochs)")
        set_peak(scheduler, cfg.learning_rate)  # the config's rate is the run's rate from here on
        accelerator.print(f"resumed from {resume_from} at step {state.step}")
    done_before = state.seconds  # the time of earlier segments, up to the checkpoint

    result = LoopResult(state=state)
    stop = {"signal": False}
    previous = signal.signal(signal.SIGINT, lambda *_: stop.update(signal=True))  # Ctrl-C: checkpoint, then stop
    loss_fn.train()
    epoch_cache: tuple[int, Sequence[Batch]] | None = (0, first_epoch)
    try:
        while state.step < total_steps and not stop["signal"]:
            epoch, in_epoch = divmod(state.step, steps_per_epoch)
            if epoch_cache is None or epoch_cache[0] != epoch:
                epoch_cache = (epoch, batches_of(epoch))
            step_batches = epoch_cache[1][step_slice(len(epoch_cache[1]), steps_per_epoch, in_epoch, per_step,
                                                     world)]
            mine = step_batches[rank::world]  # this process's micro-batches of the global step
            t0 = time.perf_counter()

            # Normalise by the labelled tokens of the whole step, over micro-batches and processes, so
            # that 4×1 and 1×4 accumulation (and 1 or N processes) give the same gradient.
            n_step = accelerator.reduce(torch.tensor(sum(b.n_units for b in mine), device=device), "sum").item()
            step_loss = 0.0
            for i, batch in enumerate(mine):
                sync = i == len(mine) - 1
                ctx = accelerator.no_sync(loss_fn) if not sync else nullcontext()
                with ctx, accelerator.autocast():
                    loss_sum, _ = loss_fn(**batch.to(device))
                    loss = loss_sum * world / max(n_step, 1)  # DDP averages gradients over processes
                accelerator.backward(loss)
                step_loss += float(loss_sum.detach())
            step_loss = accelerator.reduce(torch.tensor(step_loss, device=device), "sum").item() / max(n_step, 1)
            if not math.isfinite(step_loss):
                raise TuneforgeError(f"step {state.step + 1}: loss is {step_loss}; stopping. The last good "
                                     f"checkpoint is kept in {run_dir / 'checkpoints'}; try a lower "
                                     f"learning rate or check the data.")
            grad_norm = (accelerator.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
                         if cfg.max_grad_norm else None)
            lr = scheduler.get_last_lr()[0]
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            # The units of a preference step are pairs (KTO: examples): its trained tokens are those of
            # the replies, so that throughput and cost are tokens for every stage.
            pairs, examples = _is_pairs(mine), _is_examples(mine)
            n_trained = (accelerator.reduce(torch.tensor(sum(pair_tokens(b) for b in mine), device=device),
                                            "sum").item() if pairs or examples else n_step)
            state.step += 1
            state.trained_tokens += n_trained
            state.last_loss = step_loss
            state.seconds = done_before + time.time() - started

            elapsed = time.perf_counter() - t0
            n_tokens = accelerator.reduce(torch.tensor(sum(b.n_tokens for b in mine), device=device), "sum").item()
            record = {**_loss_stats(loss_fn), "step": state.step, "epoch": state.step / steps_per_epoch,
                      "loss": step_loss, "lr": lr,
                      "grad_norm": None if grad_norm is None else float(grad_norm),
                      "tokens": n_tokens, "trained_tokens": n_trained, "tokens_per_s": n_trained / elapsed,
                      "total_steps": total_steps}
            if pairs:
                record["pairs"] = n_step
            elif examples:
                record["examples"] = n_step
            if eval_batches and cfg.eval_every and (state.step % cfg.eval_every == 0 or state.step == total_steps):
                record.update(_run_eval(loss_fn, eval_batches, device, state, on_best))
                if cfg.early_stopping_patience and state.evals_without_improvement >= cfg.early_stopping_patience:
                    result.stopped_early = True
            result.history.append(record)
            if on_log and (state.step % cfg.log_every == 0 or state.step == total_steps):
                on_log(record)
            if accelerator.is_main_process and cfg.save_every and state.step % cfg.save_every == 0:
                save_checkpoint(run_dir, model, optimizer, scheduler, state, cfg.keep_last, fingerprint)
            if result.stopped_early:
                break
    finally:
        signal.signal(signal.SIGINT, previous)
        if noise is not None:
            noise.remove()
    if stop["signal"]:
        result.interrupted = True
        if accelerator.is_main_process:
            save_checkpoint(run_dir, model, optimizer, scheduler, state, cfg.keep_last, fingerprint)
    model.eval()
    return result


def _is_pairs(batches: Sequence[Batch]) -> bool:
    return bool(batches) and "chosen_labels" in batches[0].tensors


def _is_examples(batches: Sequence[Batch]) -> bool:
    """KTO's batches: labelled examples, each a unit of the loss."""
    return bool(batches) and "desirable" in batches[0].tensors


def pair_tokens(batch: Batch) -> int:
    """The trained tokens of a batch of preference pairs: the labelled positions (after the shift) of
    the chosen and the rejected continuations; of KTO examples, those of their own completions (the
    mismatched ones only estimate the reference point)."""
    keys = ("chosen_labels", "rejected_labels") if "chosen_labels" in batch.tensors else ("labels",)
    return sum(int((batch.tensors[key][:, 1:] != IGNORE).sum()) for key in keys)


def _run_eval(loss_fn, eval_batches, device, state: TrainState, on_best) -> dict:
    out = {}
    for name, batches in eval_batches.items():
        out[f"eval_{name}_loss"], _ = evaluate(loss_fn, batches, device)
    main = out.get("eval_val_loss", next(iter(out.values())))
    if state.best_eval is None or main < state.best_eval:
        state.best_eval, state.best_step, state.evals_without_improvement = main, state.step, 0
        if on_best:
            on_best()
    else:
        state.evals_without_improvement += 1
    return out


MMAP_THRESHOLD = 4 << 20


def _map_large_allocations(device: torch.device) -> None:
    """On CPU with glibc, serve allocations of 4 MiB and more straight from mmap, so that freeing them
    returns their pages at once. glibc's default raises that threshold as large blocks are freed and
    then recycles them from its heap, where rows of other lengths fragment it: a LoRA run on the 135M
    default model (1024-token rows) peaked at 6.5 GB resident with the default and 5.4 GB with this,
    for 4% of its speed (1 MiB: 3.2 GB, but 29% slower, every activation then faults its pages in)."""
    if device.type != "cpu":
        return
    import ctypes
    import ctypes.util

    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):  # not glibc
        return
    mallopt(-3, MMAP_THRESHOLD)  # M_MMAP_THRESHOLD; setting it also stops glibc adjusting it


def _loss_stats(loss_fn: nn.Module) -> dict:
    inner = getattr(loss_fn, "module", loss_fn)  # unwrap DDP
    return inner.pop_stats() if hasattr(inner, "pop_stats") else {}


def _accelerator(cfg: TrainConfig, on_cpu: bool):
    """accelerate's Accelerator for this run. cpu=True for a model on the CPU: accelerate then sets up
    gloo under torchrun / accelerate launch."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState, DistributedType

    precision = _mixed_precision(cfg.mixed_precision)
    held = AcceleratorState._shared_state  # process-wide, left by an earlier run in this process
    if held.get("_mixed_precision", precision) != precision and held.get("distributed_type") == DistributedType.NO:
        # accelerate refuses a second precision in one process ("restart your runtime"); a single
        # process has nothing else to keep, so a notebook can train in fp32, then in bf16.
        AcceleratorState._reset_state()
    return Accelerator(mixed_precision=precision, cpu=on_cpu)


def _mixed_precision(choice: str) -> str:
    if choice != "auto":
        return choice
    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "no"


def enable_activation_checkpointing(model) -> None:
    """Non-reentrant checkpointing through transformers' current call (`activation_checkpointing_enable`,
    5.x); older releases only have `gradient_checkpointing_enable`, which 5.x deprecates."""
    if hasattr(model, "activation_checkpointing_enable"):
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
