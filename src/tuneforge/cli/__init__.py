"""The `tuneforge` command. Each command group lives in its own small module and only parses
arguments and calls library functions."""

from __future__ import annotations

import sys

import typer
from rich.console import Console

from tuneforge.errors import TuneforgeError

app = typer.Typer(
    name="tuneforge",
    help="Adapt open LLMs to your task: curate data, format, fine-tune, evaluate, compare, serve.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

err_console = Console(stderr=True)


def main() -> None:
    """Console entry point: user errors become one red line and exit code 2, not a traceback."""
    try:
        app()
    except TuneforgeError as e:
        err_console.print(f"[bold red]error:[/] {e}", highlight=False, markup=True)
        sys.exit(2)


@app.callback()
def _options(verbose: bool = typer.Option(
        False, "--verbose", "-v",
        help="Also show the libraries' own logs, warnings and progress bars (transformers, peft, bitsandbytes).")
) -> None:
    if not verbose:
        _quiet_libraries()
    from tuneforge.native import mkl_dispatch

    mkl_dispatch.enable()  # before any command makes a product: MKL settles its kernels at its first


# Loggers of libraries that speak up on import or load about their own internals, e.g. bitsandbytes on a
# CPU-only machine, and the kernel hub it asks for a CPU kernel.
NOISY_LOGGERS = ("bitsandbytes", "kernels")


def _quiet_libraries() -> None:
    """Our own progress bars and tables say what happens; the libraries' per-file bars and
    deprecation notices about their own internals only bury them."""
    import logging
    import warnings

    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    warnings.filterwarnings("ignore", category=FutureWarning, module="transformers")
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)


def _register() -> None:
    from tuneforge.cli import (
        advise,
        chat,
        compare,
        curate,
        data,
        data_feedback,
        data_generate,
        data_show,
        doctor,
        evaluate,
        export,
        generate,
        models,
        quality,
        quickstart,
        rag,
        review,
        serve,
        train,
        ui,
    )

    data.app.command()(data_show.show)
    data.app.command()(curate.curate)
    data.app.command(name="generate")(data_generate.generate)
    data.app.command()(curate.report)
    data.app.command(name="from-feedback")(data_feedback.from_feedback)
    data.app.command(name="fit-quality")(quality.fit_quality)
    app.add_typer(data.app, name="data")
    app.command()(quickstart.quickstart)
    app.command()(train.train)
    app.command()(train.runs)
    app.command()(doctor.doctor)
    app.command()(models.models)
    app.command()(chat.chat)
    app.command()(generate.generate)
    app.command()(serve.serve)
    app.command()(export.export)
    app.command(name="eval")(evaluate.evaluate)
    app.command()(compare.compare)
    app.command()(advise.advise)
    app.add_typer(rag.app, name="rag")
    app.add_typer(review.app, name="review")
    app.command()(ui.ui)


_register()
