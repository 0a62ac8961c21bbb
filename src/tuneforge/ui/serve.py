"""Start the workbench: check the bind, make the token, print the URL, run uvicorn."""

from __future__ import annotations

from pathlib import Path

from tuneforge.ui.access import Folders, check_bind, new_token


def serve_ui(*, host: str, port: int, root: Path, folders: list[Path], model: str, token: str | None,
             random_token: bool, max_upload_bytes: int) -> None:
    import uvicorn

    from tuneforge.ui.app import Workbench, create_app

    token = token or (new_token() if random_token else None)
    check_bind(host, token)
    bench = Workbench(Folders(root, folders), token, model=model, max_upload_bytes=max_upload_bytes)
    shown = f"[{host}]" if ":" in host else host
    query = f"/?token={token}" if token else "/"
    print(f"tuneforge workbench on http://{shown}:{port}{query}", flush=True)
    try:
        uvicorn.run(create_app(bench), host=host, port=port, log_level="warning")
    finally:
        bench.close()
