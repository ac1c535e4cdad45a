"""The HTTP API and web page over a search index (FastAPI; run it with uvicorn or ``hanet serve``).

Endpoints (all answers JSON, errors included, except the page, images and video files)::

    GET /health                          status, sizes, model fingerprint, requests in flight
    GET /search?q=...&k=10&mode=two-stage&candidates=N   (default: the index's, in /health)
    GET /explain?q=...&video=ID          why a video matches a query
    GET /videos/{id}                     metadata (frames, times, duration, thumbnail and preview URLs)
    GET /videos/{id}/thumbnail.jpg       the strip of the frames the model saw
    GET /videos/{id}/preview             the video file recorded at build time
    GET /captions?video=ID&k=10          video-to-text (captions indexed)
    GET /                                the web page (static/index.html, app.js, style.css)
    GET /openapi.json, /docs             the schema

Errors are ``{"error": {"status": int, "type": str, "message": str}}`` with the same HTTP status.
Limits (:class:`ServeLimits`): query length, k, candidates, searches computed at once, requests
admitted at once (beyond it: 503 with ``Retry-After``). Video ids are looked up in the index and
never used to build a path; the only files served are the package's static files, the index's
thumbnail strips (named by row) and the video files the index recorded at build time, each only
while it is a regular file that resolves inside its root (the index folder; the folder the video
was found in): a symlink that leads out is not followed. Requests whose ``Host`` is a name other
than this machine's loopback names (or those given as ``allowed_hosts``) get 421, so a web page
that rebinds its own name to 127.0.0.1 cannot read the API. A fault of the server's own (a damaged
index file, a bug) is a 500 whose message carries an incident id the log explains, never a path.
The index is opened read-only: the server writes nothing.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
import stat
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import anyio
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from hanet import __version__
from hanet.errors import HanetError, UnknownVideoError
from hanet.index.query import QueryError
from hanet.index.search import SearchIndex
from hanet.index.storage import IndexFormatError

log = logging.getLogger("hanet.serve")
STATIC_DIR = Path(__file__).parent / "static"
_VIDEO_MEDIA = {".mp4": "video/mp4", ".m4v": "video/mp4", ".webm": "video/webm", ".ogv": "video/ogg",
                ".mov": "video/quicktime", ".mkv": "video/x-matroska", ".avi": "video/x-msvideo",
                ".gif": "image/gif"}


@dataclass
class ServeLimits:
    """What one request, and all of them together, may ask for.

    Attributes:
        max_query_chars: longer queries get 400.
        max_k: largest ``k``.
        max_candidates: largest first-stage candidate count.
        max_concurrency: searches computed at once (the rest wait their turn).
        max_pending: requests admitted at once (computing or waiting); more get 503.
        allow_exhaustive: allow ``mode=exhaustive`` (it reads the whole index per query).
    """

    max_query_chars: int = 500
    max_k: int = 100
    max_candidates: int = 5000
    max_concurrency: int = 2
    max_pending: int = 64
    allow_exhaustive: bool = True

    def validate(self) -> None:
        for name, value in asdict(self).items():
            if isinstance(value, int) and not isinstance(value, bool) and value < 1:
                raise HanetError(f"serve limit {name} must be >= 1, not {value}")


class ApiError(Exception):
    """An error answered as JSON with a status code."""

    def __init__(self, status: int, kind: str, message: str, headers: Optional[dict[str, str]] = None) -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind
        self.message = message
        self.headers = headers


# ---------------------------------------------------------------------- response schema
class ErrorBody(BaseModel):
    """An error: HTTP status, a machine-readable type, a message for people."""

    status: int
    type: str
    message: str


class ErrorResponse(BaseModel):
    error: ErrorBody


class MomentOut(BaseModel):
    """A span of a video: ``start``/``end`` in seconds (null when the features carry no frame
    times), the feature frames it covers, the attention it holds beyond a uniform spread, and a
    note when it is the whole clip or has no times."""

    start: Optional[float]
    end: Optional[float]
    first_frame: int
    last_frame: int
    excess: float
    note: Optional[str]


class PhraseMomentOut(MomentOut):
    """Where one phrase of the query matches (``kind``: verb or noun; ``role``: V, ARG0, ...)."""

    kind: str
    role: str
    text: str


class HitOut(BaseModel):
    """One video of a search (``scores``: the seven HANet scores; ``score``: their fusion;
    ``moment``: the span that best matches the query; ``phrases``: each phrase's span;
    ``frames``: tiles of its thumbnail strip; ``captions``: its indexed captions, if any)."""

    rank: int
    video_id: str
    score: float
    scores: dict[str, float]
    moment: Optional[MomentOut]
    phrases: list[PhraseMomentOut]
    thumbnail_url: Optional[str]
    video_url: str
    frames: Optional[int]
    captions: list[str]


class SearchOut(BaseModel):
    """A search: the hits, best first, and what the search did."""

    query: str
    normalized: str
    mode: str
    k: int
    candidates: int
    total: int
    hits: list[HitOut]
    exact: bool
    warnings: list[str]
    timings_ms: dict[str, float]


class VideoOut(BaseModel):
    """A video's metadata (``frame_times``: seconds of the frames the model saw)."""

    id: str
    length: Optional[int]
    frame_times: Optional[list[float]]
    duration: Optional[float]
    width: Optional[int]
    height: Optional[int]
    feature_frames: Optional[int]
    thumbnail: bool
    source_available: bool
    source_name: Optional[str]
    thumbnail_url: Optional[str]
    preview_url: Optional[str]


class CaptionHitOut(BaseModel):
    rank: int
    caption: str
    video_id: str
    score: float
    scores: dict[str, float]


class CaptionsOut(BaseModel):
    """Video-to-text: the indexed captions that best describe a video."""

    video_id: str
    mode: str
    k: int
    candidates: int
    total: int
    hits: list[CaptionHitOut]
    timings_ms: dict[str, float]


class HealthOut(BaseModel):
    """Liveness and what is served."""

    status: str
    version: str
    videos: int
    captions: int
    generation: int
    model: str
    variant: str
    default_candidates: int
    in_flight: int
    limits: dict[str, Any]
    examples: list[str]


def _error_body(status: int, kind: str, message: str) -> dict[str, Any]:
    return {"error": {"status": status, "type": kind, "message": message}}


class HeadAsGet:
    """ASGI middleware: answers ``HEAD`` like ``GET`` without the body (HTTP says every GET
    resource answers HEAD; link checkers, caches and ``curl -I`` ask it).

    Args:
        app: the ASGI application.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope.get("type") != "http" or scope.get("method") != "HEAD":
            await self.app(scope, receive, send)
            return

        async def headers_only(message: dict) -> None:
            if message["type"] == "http.response.body":
                if not message.get("more_body", False):
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
                return
            await send(message)

        await self.app(dict(scope, method="GET"), receive, headers_only)


class HostCheck:
    """ASGI middleware: answer only requests addressed to this machine by an IP address, by a
    loopback name or by a name in ``allowed`` (421 otherwise). A name someone else's DNS can point
    at 127.0.0.1 is how a web page would reach a local API (DNS rebinding); an address cannot be
    rebound.

    Args:
        app: the ASGI application.
        allowed: further host names (case-insensitive); ``*`` answers any.
    """

    LOOPBACK_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost")

    def __init__(self, app: Any, allowed: Sequence[str] = ()) -> None:
        self.app = app
        self.any = "*" in allowed
        self.names = {h.lower().rstrip(".") for h in (*self.LOOPBACK_NAMES, *allowed)}

    def host_ok(self, host: str) -> bool:
        if self.any:
            return True
        h = host.strip().lower()
        if h.startswith("["):  # [v6]:port
            h = h[1:].split("]", 1)[0]
        elif h.count(":") == 1:
            h = h.split(":", 1)[0]
        h = h.rstrip(".")
        if h in self.names or h.endswith(".localhost"):
            return True
        try:
            ipaddress.ip_address(h)
            return True
        except ValueError:
            return False

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope.get("type") == "http":  # the app serves no websockets
            host = next((v.decode("latin-1") for k, v in scope.get("headers", ()) if k == b"host"), "")
            if host and not self.host_ok(host):
                body = JSONResponse(_error_body(421, "misdirected_request",
                                                "this server answers to its own addresses and names only "
                                                "(start it with --allow-host NAME to add a name)"), status_code=421)
                await body(scope, receive, send)
                return
        await self.app(scope, receive, send)


def resolve_inside(path: Optional[Path], root: Path) -> Optional[Path]:
    """``path`` resolved, if it is a regular file inside ``root`` (resolved too); else None.

    What the server serves passes here: a symlink may point within its root, never out of it.
    """
    if path is None:
        return None
    try:
        real, base = Path(os.path.realpath(path)), Path(os.path.realpath(root))
        if not real.is_relative_to(base) or not stat.S_ISREG(os.stat(real).st_mode):
            return None
    except (OSError, ValueError):
        return None
    return real


#: absolute paths in a message (a user's file layout is not the client's business)
_ABS_PATH = re.compile(r"(?<![\w.])/(?:[^\s'\":,;()]+/)*([^\s'\":,;()/]+)")


def public_message(message: str) -> str:
    """A message with every absolute path cut to its last component."""
    return _ABS_PATH.sub(lambda m: m.group(1), message)


def create_app(index: Any, limits: Optional[ServeLimits] = None, *, preload_parser: bool = True,
               allowed_hosts: Sequence[str] = ()):
    """Build the FastAPI app for an index.

    Args:
        index: an index directory, or an open :class:`~hanet.index.search.SearchIndex`.
        limits: serving limits (defaults: :class:`ServeLimits`).
        preload_parser: load spaCy now rather than on the first query.
        allowed_hosts: host names answered besides ``localhost`` and IP addresses (``*``: any).

    Returns:
        The ``FastAPI`` application (``app.state.index`` is the open index).

    Raises:
        IndexFormatError: the index cannot be opened (missing, damaged, other format version).
    """
    limits = limits or ServeLimits()
    limits.validate()
    if not isinstance(index, SearchIndex):
        index = SearchIndex.open(index, max_query_chars=limits.max_query_chars)
    else:
        index.queries.max_chars = limits.max_query_chars
    if preload_parser:
        _ = index.queries.parser

    app = FastAPI(title="hanet search", version=__version__,
                  description="Text-to-video search with HANet (hierarchical alignment), with explanations.")
    app.add_middleware(HeadAsGet)
    app.add_middleware(HostCheck, allowed=allowed_hosts)
    app.state.index = index
    app.state.limits = limits
    app.state.in_flight = 0
    gate = _Gate(app, index, limits)
    _add_error_handlers(app)
    _add_search_routes(app, index, limits, gate)
    _add_video_routes(app, index, gate)
    return app


class _Gate:
    """What every endpoint passes through: admission and concurrency limits for the blocking
    work, input checks, and the URLs of a video's resources."""

    def __init__(self, app: Any, index: Any, limits: ServeLimits) -> None:
        self.app, self.index, self.limits = app, index, limits
        self.limiter = anyio.CapacityLimiter(limits.max_concurrency)

    async def compute(self, fn: Callable[[], Any]) -> Any:
        """Run blocking work in a worker thread, within the admission and concurrency limits."""
        app, limits = self.app, self.limits
        if app.state.in_flight >= limits.max_pending:
            raise ApiError(503, "busy", f"too many requests in flight ({limits.max_pending}); retry shortly",
                           {"Retry-After": "1"})
        app.state.in_flight += 1
        try:
            return await anyio.to_thread.run_sync(fn, limiter=self.limiter)
        except QueryError as exc:
            raise ApiError(400, "bad_query", public_message(str(exc))) from None
        except UnknownVideoError as exc:  # not KeyError: a bug's KeyError must stay a 500
            raise ApiError(404, "unknown_video", f"no video {exc.video_id!r} in the index") from None
        except (IndexFormatError, OSError):  # the index's files, not the request: the server's fault
            raise
        except HanetError as exc:
            raise ApiError(400, "bad_request", public_message(str(exc))) from None
        finally:
            app.state.in_flight -= 1

    def check_query(self, q: str) -> str:
        limit = self.limits.max_query_chars
        if len(q) > limit:
            raise ApiError(400, "bad_query", f"query too long: {len(q)} characters (at most {limit})")
        if not q.strip():
            raise ApiError(400, "bad_query", "empty query: type a few words describing the video")
        return q

    def check_id(self, video_id: str) -> str:
        if len(video_id) > 512 or any(ord(ch) < 32 or ord(ch) == 127 for ch in video_id):
            raise ApiError(400, "bad_video_id", "malformed video id")
        if video_id not in self.index.videos.row_of:
            raise ApiError(404, "unknown_video", f"no video {video_id!r} in the index")
        return video_id

    def video_urls(self, video_id: str) -> tuple[str, Optional[str]]:
        from urllib.parse import quote

        base = f"/videos/{quote(video_id, safe='')}"
        return base, (f"{base}/thumbnail.jpg" if self.thumbnail_path(video_id) is not None else None)

    def preview_path(self, video_id: str) -> Optional[Path]:
        p = self.index.source(video_id)
        if p is None or p.suffix.lower() not in _VIDEO_MEDIA:
            return None
        return resolve_inside(p, p.parent)

    def thumbnail_path(self, video_id: str) -> Optional[Path]:
        return resolve_inside(self.index.thumbnail(video_id), Path(self.index.path))



def _add_error_handlers(app: Any) -> None:
    """Every error as the same JSON body (:class:`ErrorResponse`)."""
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(_error_body(exc.status, exc.kind, exc.message), status_code=exc.status,
                            headers=exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return JSONResponse(_error_body(exc.status_code, kind, str(exc.detail)), status_code=exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for e in exc.errors():
            where = ".".join(str(x) for x in e.get("loc", ()) if x not in ("query", "path"))
            parts.append(f"{where}: {e.get('msg')}")
        return JSONResponse(_error_body(422, "invalid_parameter", "; ".join(parts) or "invalid request"),
                            status_code=422)

    @app.exception_handler(Exception)
    async def _internal_error(request: Request, exc: Exception) -> JSONResponse:
        incident = uuid.uuid4().hex[:12]
        log.exception("internal error %s on %s", incident, request.url.path)
        return JSONResponse(_error_body(500, "internal_error", f"the server failed to answer this request "
                                        f"(incident {incident} in its log; it keeps serving others)"),
                            status_code=500)


_ERRORS = {400: {"model": ErrorResponse}, 404: {"model": ErrorResponse}, 422: {"model": ErrorResponse},
           503: {"model": ErrorResponse}}


def _add_search_routes(app: Any, index: Any, limits: ServeLimits, gate: _Gate) -> None:
    """``/health``, ``/search``, ``/explain``, ``/captions``."""
    errors = _ERRORS
    examples = index.examples()

    @app.get("/health", response_model=HealthOut, tags=["service"])
    async def health() -> dict[str, Any]:
        """Liveness and what is served."""
        return {"status": "ok", "version": __version__, "videos": index.num_videos, "captions": index.num_captions,
                "generation": index.generation, "model": index.fingerprint[:16], "variant": index.variant,
                "default_candidates": index.default_candidates(), "in_flight": app.state.in_flight,
                "limits": asdict(limits), "examples": examples}

    @app.get("/search", response_model=SearchOut, responses=errors, tags=["search"])
    async def search(q: str = Query(..., description="the text query"),
                     k: int = Query(10, ge=1, le=limits.max_k, description="results"),
                     mode: str = Query("two-stage", pattern="^(two-stage|exhaustive)$"),
                     candidates: Optional[int] = Query(None, ge=1, le=limits.max_candidates,
                                                       description="first-stage candidates (default: the "
                                                                   "index's, see /health)")) -> dict[str, Any]:
        """Text-to-video search: the k best videos by HANet's fused score."""
        gate.check_query(q)
        if mode == "exhaustive" and not limits.allow_exhaustive:
            raise ApiError(400, "bad_request", "exhaustive mode is disabled on this server")
        def run() -> dict[str, Any]:
            out = index.search_result(q, k, mode, candidates).to_dict()
            for h in out["hits"]:
                h["video_url"], h["thumbnail_url"] = gate.video_urls(h["video_id"])
                h["frames"] = index.videos.meta(index.row(h["video_id"])).get("length")
                h["captions"] = index.captions_of(h["video_id"])
            return out

        return await gate.compute(run)

    @app.get("/explain", tags=["search"], responses=errors)
    async def explain(q: str = Query(..., description="the text query"),
                      video: str = Query(..., description="an indexed video id")) -> dict[str, Any]:
        """Why a video matches a query: seven-score contributions, phrase-frame and phrase-clip
        alignment, concepts (see hanet.index.explain.Explanation)."""
        gate.check_query(q)
        gate.check_id(video)
        exp = await gate.compute(lambda: index.explain(q, video))
        out = exp.to_dict()
        out["video_url"], out["thumbnail_url"] = gate.video_urls(video)
        return out

    @app.get("/captions", response_model=CaptionsOut, responses=errors, tags=["search"])
    async def captions(video: str = Query(..., description="an indexed video id"),
                       k: int = Query(10, ge=1, le=limits.max_k),
                       mode: str = Query("two-stage", pattern="^(two-stage|exhaustive)$")) -> dict[str, Any]:
        """Video-to-text: the indexed captions that best describe a video."""
        gate.check_id(video)
        if index.num_captions == 0:
            raise ApiError(404, "no_captions", "no captions are indexed (build the index with --captions)")
        res = await gate.compute(lambda: index.search_captions(video, k, mode))
        return res.to_dict()


def _add_video_routes(app: Any, index: Any, gate: _Gate) -> None:
    """``/videos/{id}`` (metadata, thumbnail strip, preview), the web page and its static files."""
    errors = _ERRORS
    @app.get("/videos/{video_id}", response_model=VideoOut, responses=errors, tags=["videos"])
    async def video_meta(video_id: str) -> dict[str, Any]:
        """A video's metadata, with the URLs of its thumbnail strip and preview."""
        gate.check_id(video_id)
        meta = index.video(video_id)
        base, thumb = gate.video_urls(video_id)
        meta["thumbnail_url"] = thumb
        meta["preview_url"] = f"{base}/preview" if gate.preview_path(video_id) is not None else None
        return meta

    @app.get("/videos/{video_id}/thumbnail.jpg", responses=errors, tags=["videos"],
             response_class=FileResponse)
    async def thumbnail(video_id: str) -> FileResponse:
        """The strip of the model's frames (tile i = frame i of the explanations)."""
        gate.check_id(video_id)
        p = gate.thumbnail_path(video_id)
        if p is None:
            raise ApiError(404, "no_thumbnail", f"no thumbnail for {video_id!r} (its video file was not found "
                           f"at build time)")
        return FileResponse(p, media_type="image/jpeg", headers={"Cache-Control": "max-age=3600"})

    @app.get("/videos/{video_id}/preview", responses=errors, tags=["videos"], response_class=FileResponse)
    async def preview(video_id: str) -> FileResponse:
        """The video file recorded at build time (only that file, if it still exists)."""
        gate.check_id(video_id)
        p = gate.preview_path(video_id)
        if p is None:
            raise ApiError(404, "no_preview", f"no playable video file for {video_id!r}")
        return FileResponse(p, media_type=_VIDEO_MEDIA[p.suffix.lower()])

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=str(STATIC_DIR)), name="static")




def default_threads(max_concurrency: int) -> int:
    """Torch threads per search: the cores shared by the searches computed at once."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // max(1, max_concurrency))


__all__ = ["ServeLimits", "ApiError", "create_app", "default_threads", "STATIC_DIR"]
