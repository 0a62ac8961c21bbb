"""The workbench's FastAPI app: access checks, then routes that call the library (see the page modules)."""

from __future__ import annotations

import mimetypes
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

from tuneforge.config import DEFAULT_MODEL
from tuneforge.errors import TuneforgeError
from tuneforge.ui.access import COOKIE, CSRF_HEADER, SAFE_METHODS, AccessError, Folders, token_matches
from tuneforge.ui.jobs import JobError, Jobs, NoSuchJob
from tuneforge.ui.playground import Playground
from tuneforge.ui.review import Review

STATIC = Path(__file__).parent / "static"
STATE_DIR = ".tuneforge"
"""Under the root: the SQLite state (jobs, reviews), saved job configs, uploads."""


@dataclass
class Workbench:
    """Everything the routes share."""

    folders: Folders
    token: str | None
    model: str = DEFAULT_MODEL
    max_upload_bytes: int = 1 << 20
    jobs: Jobs = field(init=False)
    playground: Playground = field(init=False)
    review: Review = field(init=False)

    def __post_init__(self) -> None:
        self.state = self.folders.root / STATE_DIR
        self.jobs = Jobs(self.state / "workbench.sqlite", cwd=self.folders.root)
        self.playground = Playground(self.model)
        self.review = Review(self.folders.root)

    def close(self) -> None:
        self.playground.close()
        self.review.close()
        self.jobs.close()


def _error(status: int, message: str, kind: str = "invalid_request_error", code: str | None = None):
    from fastapi.responses import JSONResponse

    return JSONResponse({"error": {"message": message, "type": kind, "code": code}}, status_code=status)


def create_app(bench: Workbench):
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
    from starlette.exceptions import HTTPException

    from tuneforge.ui import routes

    app = FastAPI(title="tuneforge workbench", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.bench = bench

    @app.middleware("http")
    async def guard(request: Request, call_next):
        """The token on every request (query once, then cookie or bearer header); for a request that
        changes state, also in the CSRF header a page of another site cannot set."""
        token = bench.token
        if token is None:
            return await call_next(request)
        query = request.query_params.get("token")
        if query is not None and token_matches(query, token) and request.method == "GET":
            rest = urlencode([(k, v) for k, v in request.query_params.multi_items() if k != "token"])
            response = RedirectResponse(request.url.path + (f"?{rest}" if rest else ""), status_code=303)
            response.set_cookie(COOKIE, token, httponly=True, samesite="strict")
            return response
        bearer = request.headers.get("authorization", "").removeprefix("Bearer ").strip() or None
        if not (token_matches(request.cookies.get(COOKIE), token) or token_matches(bearer, token)):
            return _error(401, "missing or wrong access token: open the URL with ?token= that `tuneforge ui` "
                               "printed", "authentication_error", "invalid_token")
        if request.method not in SAFE_METHODS and not token_matches(request.headers.get(CSRF_HEADER), token):
            return _error(403, f"a request that changes state needs the {CSRF_HEADER} header", "permission_error",
                          "csrf")
        return await call_next(request)

    @app.exception_handler(AccessError)
    async def access_error(request: Request, e: AccessError):
        return _error(403, str(e), "permission_error", "outside_root")

    @app.exception_handler(NoSuchJob)
    async def no_job(request: Request, e: NoSuchJob):
        return _error(404, str(e), code="not_found")

    @app.exception_handler(JobError)
    async def job_error(request: Request, e: JobError):
        return _error(409, str(e), code="job_state")

    @app.exception_handler(TuneforgeError)
    async def user_error(request: Request, e: TuneforgeError):
        return _error(400, str(e))

    @app.exception_handler(FileNotFoundError)
    async def not_found(request: Request, e: FileNotFoundError):
        return _error(404, f"not found: {e.filename or e}", code="not_found")

    @app.exception_handler(UnicodeDecodeError)
    async def not_text(request: Request, e: UnicodeDecodeError):
        return _error(400, f"not UTF-8 text: {e.reason} at byte {e.start}", code="not_text")

    @app.exception_handler(IsADirectoryError)
    async def a_folder(request: Request, e: IsADirectoryError):
        return _error(400, f"{e.filename}: a folder, not a file", code="is_a_folder")

    @app.exception_handler(Exception)
    async def server_error(request: Request, e: Exception):
        """A bug, not the user's input: an OpenAI-style 500 body instead of a bare page."""
        return _error(500, f"internal error: {type(e).__name__}: {e}", "server_error")

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, e: HTTPException):
        return _error(e.status_code, str(e.detail))

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, e: RequestValidationError):
        where = "; ".join(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in e.errors())
        return _error(422, where)

    @app.get("/")
    def index() -> HTMLResponse:
        page = (STATIC / "index.html").read_text(encoding="utf-8")
        policy = "default-src 'self'; frame-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:"
        return HTMLResponse(page.replace("{{TOKEN}}", bench.token or ""), headers={"Content-Security-Policy": policy})

    @app.get("/static/{name}")
    def static(name: str) -> Response:
        path = STATIC / name
        if "/" in name or name.startswith(".") or not path.is_file():
            return _error(404, f"no static file {name!r}", code="not_found")
        return FileResponse(path, media_type=mimetypes.guess_type(name)[0])

    @app.get("/files/{rel:path}")
    def files(rel: str) -> Response:
        """A run's report.html, its plots, a compare report: any file under the workbench's folders, with
        no script of its own allowed to run (a file is data, never code on the workbench's origin)."""
        path = bench.folders.resolve(rel)
        if not path.is_file():
            return _error(404, f"{rel}: no such file", code="not_found")
        policy = "default-src 'self' 'unsafe-inline' data:; script-src 'none'"
        return FileResponse(path, media_type=mimetypes.guess_type(path.name)[0] or "text/plain",
                            headers={"Content-Security-Policy": policy})

    app.include_router(routes.router(bench))
    return app
