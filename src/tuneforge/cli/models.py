"""`tuneforge models`: the model aliases and what is already available offline."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from tuneforge.models.aliases import ALIASES
from tuneforge.models.gguf_convert import converted_dir
from tuneforge.paths import cache_root


def models() -> None:
    """List model aliases (offline, shipped in wheels), converted models and the local HF hub cache."""
    console = Console()
    console.print(alias_table())
    converted = sorted(p for p in (cache_root() / "models").glob("*") if (p / "config.json").exists())
    console.print(f"\nConverted GGUF models in {cache_root() / 'models'}: "
                  + (", ".join(p.name for p in converted) or "none"))

    from huggingface_hub import scan_cache_dir

    try:
        repos = [r for r in scan_cache_dir().repos if r.repo_type == "model"]
    except Exception:  # no HF cache directory yet
        repos = []
    console.print("Local Hugging Face cache: "
                  + (", ".join(sorted(r.repo_id for r in repos)) or "empty (hub ids need a download first)"))


def alias_table() -> Table:
    table = Table(title="Model aliases")
    table.add_column("alias", no_wrap=True)  # an alias is typed as is: never wrapped or cut
    table.add_column("status", overflow="fold")
    table.add_column("description")
    for alias in ALIASES.values():
        try:
            ready = (converted_dir(alias.gguf_path(), alias.name) / "config.json").exists()
            status = "[green]converted[/]" if ready else "[yellow]installed (converted on first use)[/]"
        except Exception:  # the wheel is missing: say how to get it rather than fail the listing
            status = f"[red]missing[/]: {alias.install_hint}"
        table.add_row(alias.name, status, alias.description)
    return table
