"""The FastAPI application of `fs serve`: a JSON search API, thumbnails and one static page.

Routes (all answers from a :class:`~featurestore.server.searcher.StoreSearcher` loaded once):

- ``GET /api/search?query=TEXT|id=...&k=10&split=X&class=NAME`` and ``POST /api/search`` with a
  multipart ``image`` (and form fields ``k``, ``split``, ``class``): ``{"hits": [...], "took_ms"}``;
- ``GET /api/info``; ``GET /api/rows?split=X&class=NAME&offset=&limit=`` (a class's rows);
  ``GET /api/unreadable?split=X`` (rows that failed to decode, with reasons);
- ``GET /thumb/<split>/<row>``: a small JPEG of the image the store recorded for that row;
- ``GET /``: the page (``static/index.html`` with its script and style under ``/static``).

Every refused request is a 4xx with ``{"error": "one line"}``; the server keeps answering.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI, File, Form, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from featurestore.errors import FeatureStoreError, NotFoundError, SourceError
from featurestore.server.searcher import MAX_UPLOAD_BYTES, QueryError, StoreSearcher
from featurestore.server.thumbnails import ThumbnailCache

STATIC = Path(__file__).parent / "static"


def create_app(searcher: StoreSearcher, thumbnails: ThumbnailCache | None = None) -> FastAPI:
    """The application serving ``searcher``; closing it is left to the caller."""
    from featurestore import __version__

    thumbs = thumbnails or ThumbnailCache()
    app = FastAPI(title="featurestore", version=__version__, docs_url=None, redoc_url=None)
    app.state.searcher = searcher
    app.state.thumbnails = thumbs

    @app.exception_handler(QueryError)
    async def query_error(request: Request, exc: QueryError) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=exc.status)

    @app.exception_handler(FeatureStoreError)
    async def store_error(request: Request, exc: FeatureStoreError) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=404 if isinstance(exc, NotFoundError) else 400)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"error": _validation_message(list(exc.errors()))}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers)

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/api/info")
    def info() -> dict[str, Any]:
        return searcher.info()

    @app.get("/api/search")
    def search(query: str | None = None, id: str | None = None, k: int = 10, split: str | None = None,
               class_name: str | None = Query(None, alias="class")) -> dict[str, Any]:
        if (query is None) == (id is None):
            raise QueryError("give exactly one query: query=TEXT or id=... (or POST an image)")
        if query is not None:
            return searcher.search_text(query, k, split, class_name)
        assert id is not None  # exactly one of the two was given
        return searcher.search_id(id, k, split, class_name)

    @app.post("/api/search")
    def search_image(image: UploadFile = File(...), k: int = Form(10), split: str | None = Form(None),
                     class_name: str | None = Form(None, alias="class")) -> dict[str, Any]:
        data = image.file.read(MAX_UPLOAD_BYTES + 1)
        return searcher.search_image(data, k, split, class_name, filename=image.filename)

    @app.get("/api/rows")
    def rows(split: str | None = None, class_name: str | None = Query(None, alias="class"), offset: int = 0,
             limit: int = 100) -> dict[str, Any]:
        return searcher.rows(split, class_name, offset, limit)

    @app.get("/api/unreadable")
    def unreadable(split: str | None = None, offset: int = 0, limit: int = 100) -> dict[str, Any]:
        return searcher.unreadable(split, offset, limit)

    @app.get("/thumb/{split:path}/{row}")
    def thumb(split: str, row: str) -> Response:
        served = searcher.split(split)
        position = served.row(row)
        if not served.valid[position]:
            raise QueryError(f"row {position} of split {served.name!r} is unreadable: {served.reasons[position]}", 404)
        try:
            data = thumbs.get(str(served.paths[position]))
        except SourceError as exc:
            raise QueryError(str(exc), 404) from None
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "max-age=3600"})

    return app


def _validation_message(errors: list[dict[str, Any]]) -> str:
    """One line from FastAPI's validation errors: ``query parameter k: Input should be ...``."""
    parts = []
    for error in errors[:3]:
        where = [str(p) for p in error.get("loc", ())]
        place = {"query": "query parameter", "body": "form field", "path": "path part"}.get(where[0], where[0]) \
            if where else "request"
        name = " ".join(where[1:]) or "(missing)"
        parts.append(f"{place} {name}: {error.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"
