"""Who may use the workbench and which files it may touch.

A random token (printed at start, as Jupyter does) is required on every request: as `?token=` once,
then as a cookie; scripts may send `Authorization: Bearer TOKEN`. A request that changes state must
also carry the token in the `X-Tuneforge-Token` header, which a page of another site cannot set
(CSRF). Files are reached only under the root and the configured folders, after resolving symlinks.
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
from pathlib import Path

from tuneforge.errors import TuneforgeError

COOKIE = "tuneforge_ui_token"
CSRF_HEADER = "x-tuneforge-token"
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


class AccessError(TuneforgeError):
    """A path outside the allowed folders, or a bind that would expose the workbench unguarded."""


def new_token() -> str:
    return secrets.token_urlsafe(24)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: str | None) -> None:
    """Loopback may go without a token (a user's explicit choice); any other address may not."""
    if not token and not is_loopback(host):
        raise AccessError(f"--host {host} exposes the workbench to the network: it needs an access token "
                          f"(drop --no-token)")


def token_matches(given: str | None, token: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), token.encode())


class Folders:
    """The root and the configured folders; `resolve` maps a user's path onto a real file inside them."""

    def __init__(self, root: Path, extra: list[Path] | tuple[Path, ...] = ()) -> None:
        self.root = root.resolve()
        self.allowed = [self.root, *(p.resolve() for p in extra)]
        for folder in self.allowed:
            if not folder.is_dir():
                raise AccessError(f"{folder}: not a folder")

    def resolve(self, path: str | Path) -> Path:
        """`path` relative to the root (or absolute), symlinks resolved, refused outside every folder."""
        p = Path(path).expanduser()
        full = (p if p.is_absolute() else self.root / p).resolve()
        if not any(full.is_relative_to(folder) for folder in self.allowed):
            raise AccessError(f"{path}: outside the workbench's folders (the root {self.root} and any --folder)")
        return full

    def relative(self, path: Path) -> str:
        """How a page names `path`: relative to the root where it lies there, else absolute."""
        return str(path.relative_to(self.root)) if path.is_relative_to(self.root) else str(path)
