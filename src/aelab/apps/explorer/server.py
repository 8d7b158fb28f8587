"""``aelab explore``: the explorer's page and its JSON API, on Starlette under uvicorn.

The page sends codes, never images: ``POST /api/models/{model}/decode`` with ``{"code": [...]}``
answers a PNG. Decoding runs in this process, on the model's device, in one worker thread (a
model is never used by two threads at once), and the requests that arrive while it is busy are
decoded together as one batch (:class:`Batcher`). Every request is checked and a bad one is
answered with a 4xx status and ``{"error": "<one line>"}``; the only files served are the
page's own three, named in :data:`STATIC` (no path from a request reaches the file system). A
body must arrive within ``body_timeout`` seconds (else 408, and the connection closes); a client
that leaves before sending all of it is no error of the server's: nothing is logged.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import math
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from typing import Any

import numpy as np

from aelab.apps.explorer.directions import Directions
from aelab.apps.explorer.space import (
    MAX_UPLOAD_BYTES,
    SPRITE_COLUMNS,
    ImageTooLarge,
    LatentSpace,
    UnsupportedImage,
    png,
    to_uint8,
)
from aelab.apps.explorer.unusual import CannotScore, Unusual

STATIC = {  # URL name -> (package file, media type)
    "explore.js": ("explore.js", "text/javascript; charset=utf-8"),
    "map.js": ("map.js", "text/javascript; charset=utf-8"),
    "explore.css": ("explore.css", "text/css; charset=utf-8"),
}
MAX_JSON_BYTES = 1 << 20
MAX_BATCH = 64
BODY_TIMEOUT = 30.0  # seconds for a body: 10 MiB at 350 kB/s
UPLOAD_TYPES = (
    "image/png", "image/jpeg", "image/x-portable-graymap", "image/x-portable-pixmap",
    "image/x-portable-anymap", "image/x-portable-bitmap", "application/octet-stream",
)  # fmt: skip
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")
SECURITY_HEADERS = {
    # everything from this server, nothing inline, nothing from a CDN
    "content-security-policy": "default-src 'self'; img-src 'self' data: blob:; "
    "script-src 'self'; style-src 'self'; connect-src 'self'; frame-ancestors 'none'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
}


class HostCheck:
    """ASGI middleware: answers only requests whose Host header names an allowed host (so that
    a web page elsewhere cannot reach a loopback server through DNS rebinding)."""

    def __init__(self, app, hosts: Sequence[str]):
        self.app = app
        self.hosts = list(dict.fromkeys(h.lower() for h in hosts))  # names are case-blind

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and "*" not in self.hosts:
            from starlette.datastructures import Headers
            from starlette.responses import JSONResponse

            host = Headers(scope=scope).get("host", "")
            name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
            if name.lower() not in self.hosts:
                message = f"Host={host!r} is not this server; allowed: {', '.join(self.hosts)}"
                await JSONResponse({"error": message}, 400)(scope, receive, send)
                return
        await self.app(scope, receive, send)


class Refused(Exception):
    """A request answered with ``status`` and a one-line JSON error; ``close``: and the
    connection closed (its body was not all read)."""

    def __init__(self, status: int, message: str, *, close: bool = False):
        super().__init__(message)
        self.status = status
        self.close = close


def _asset(name: str) -> bytes:
    return resources.files(__package__).joinpath("static", name).read_bytes()


class Batcher:
    """Decodes codes in one worker thread; requests that pile up while it works go together.

    ``largest`` is the largest batch decoded so far (a test checks that piling up batches).
    """

    def __init__(self, executor: ThreadPoolExecutor, max_batch: int = MAX_BATCH):
        self.executor = executor
        self.max_batch = max_batch
        self.queue: list[tuple[LatentSpace, np.ndarray, asyncio.Future]] = []
        self.busy = False
        self.task: asyncio.Task | None = None
        self.batches = 0
        self.largest = 0

    async def decode(self, space: LatentSpace, code: np.ndarray) -> bytes:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self.queue.append((space, code, future))
        if not self.busy:
            self.busy = True
            self.task = loop.create_task(self._work())  # kept: a task nobody holds may vanish
        return await future

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self.queue:
                batch, self.queue = self.queue[: self.max_batch], self.queue[self.max_batch :]
                self.batches += 1
                self.largest = max(self.largest, len(batch))
                try:
                    images = await loop.run_in_executor(self.executor, _decode_batch, batch)
                except Exception as e:  # the model failed: every waiting request learns why
                    for *_, future in batch:
                        if not future.done():
                            future.set_exception(e)
                    continue
                for (*_, future), image in zip(batch, images):
                    if not future.done():  # a client that left has cancelled its future
                        future.set_result(image)
        finally:
            self.busy = False


def _decode_batch(batch: Sequence[tuple[LatentSpace, np.ndarray, Any]]) -> list[bytes]:
    """PNGs of the batch's codes, one decoder call per model."""
    out: list[bytes | None] = [None] * len(batch)
    by_space: dict[int, list[int]] = {}
    for i, (space, _, _) in enumerate(batch):
        by_space.setdefault(id(space), []).append(i)
    for rows in by_space.values():
        space = batch[rows[0]][0]
        pixels = space.decode(np.concatenate([batch[i][1] for i in rows]))
        for i, p in zip(rows, pixels):
            out[i] = png(p)
    return out  # type: ignore[return-value]


def _data_url(pixels: np.ndarray) -> str:
    return "data:image/png;base64," + base64.b64encode(png(pixels)).decode("ascii")


async def _body(request, limit: int, timeout: float) -> bytes:
    """The request's body, refused with 413 beyond ``limit`` bytes (before it is all read) and
    with 408 if it is not all there within ``timeout`` seconds."""
    from starlette.requests import ClientDisconnect

    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise Refused(400, f"Content-Length={declared!r} is not a number of bytes")
        if int(declared) > limit:
            raise Refused(413, f"body of {int(declared):,} bytes; allowed: at most {limit:,}")
    try:
        return await asyncio.wait_for(_read(request, limit), timeout)
    except asyncio.TimeoutError:
        raise Refused(408, f"the body did not arrive within {timeout:g} s", close=True) from None
    except ClientDisconnect:  # nobody is left to read the answer; uvicorn drops it
        raise Refused(400, "the client left before sending its whole body") from None


async def _read(request, limit: int) -> bytes:
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise Refused(413, f"body of more than {limit:,} bytes; allowed: at most {limit:,}")
        chunks.append(chunk)
    return b"".join(chunks)


async def _json(request, timeout: float) -> dict[str, Any]:
    kind = request.headers.get("content-type", "").split(";")[0].strip()
    if kind != "application/json":
        raise Refused(415, f"Content-Type={kind or 'none'!r}; allowed: application/json")
    try:
        body = json.loads(await _body(request, MAX_JSON_BYTES, timeout))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise Refused(400, "body is not valid JSON") from None
    except RecursionError:
        raise Refused(400, 'body nests too deep; expected {"code": [numbers]}') from None
    if not isinstance(body, dict):
        raise Refused(400, 'body is not a JSON object; expected {"code": [numbers]}')
    return body


def _number(params, name: str, default: float | None = None) -> float:
    value = params.get(name)
    if value is None:
        if default is None:
            raise Refused(400, f"{name} is missing; expected a number")
        return default
    try:
        out = float(value)
    except ValueError:
        raise Refused(400, f"{name}={value!r} is not a number") from None
    if not math.isfinite(out):
        raise Refused(400, f"{name}={value!r} is not a finite number")
    return out


def create_app(
    spaces: dict[str, LatentSpace],
    *,
    allowed_hosts: Sequence[str] | None = None,
    body_timeout: float = BODY_TIMEOUT,
):
    """The Starlette application serving ``spaces`` (model name -> latent space).

    ``allowed_hosts``: the Host headers answered (the loopback names by default, so that a web
    page elsewhere cannot reach this server through DNS rebinding); ``["*"]`` for any.
    ``body_timeout``: seconds a request's body may take to arrive, from its head (else 408).
    """
    if not body_timeout > 0:
        raise ValueError(f"body_timeout={body_timeout!r} is not valid; expected seconds > 0")
    from starlette.applications import Starlette
    from starlette.exceptions import HTTPException
    from starlette.middleware import Middleware
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="aelab-model")
    # maps (t-SNE takes seconds) and thumbnails need codes and pixels, not the model: another
    # thread, so that slow ones never hold up a decode
    arrays = ThreadPoolExecutor(max_workers=1, thread_name_prefix="aelab-arrays")
    batcher = Batcher(executor)
    unusual = {name: Unusual(s) for name, s in spaces.items()}  # calibrated on first use
    directions = {name: Directions(s) for name, s in spaces.items()}  # found on first use

    def space(request) -> LatentSpace:
        name = request.path_params["model"]
        if name not in spaces:
            raise Refused(404, f"model={name!r} is not one of: {', '.join(spaces)}")
        return spaces[name]

    async def compute(fn, *args, pool: ThreadPoolExecutor = executor):
        try:
            return await asyncio.get_running_loop().run_in_executor(pool, fn, *args)
        except UnsupportedImage as e:
            raise Refused(415, str(e)) from None
        except CannotScore as e:
            raise Refused(409, str(e)) from None
        except ImageTooLarge as e:
            raise Refused(413, str(e)) from None
        except ValueError as e:
            raise Refused(400, str(e)) from None

    def respond(content: bytes, media_type: str, cache: bool = False) -> Response:
        headers = dict(SECURITY_HEADERS)
        headers["cache-control"] = "max-age=3600" if cache else "no-store"
        return Response(content, media_type=media_type, headers=headers)

    def answer(payload: dict[str, Any]) -> Response:
        return respond(json.dumps(payload).encode("utf-8"), "application/json")

    async def index(request):
        return respond(_asset("index.html"), "text/html; charset=utf-8")

    async def static(request):
        name = request.path_params["name"]
        if name not in STATIC:
            raise Refused(404, f"no file {name!r} here")
        file, media = STATIC[name]
        return respond(_asset(file), media)

    async def models(request):
        return answer({"models": list(spaces)})

    async def describe(request):
        s = space(request)
        out = s.describe()
        out["thumbnail"] = list(s.thumbnail_size())
        out["sprite_columns"] = SPRITE_COLUMNS
        return answer(out)

    async def points(request):
        s = space(request)
        method = request.query_params.get("method", "pca")
        return answer(await compute(s.points, method, pool=arrays))

    async def units(request):
        s = space(request)
        return answer({"units": await compute(s.unit_list, pool=arrays)})

    async def unit(request):
        s = space(request)
        text = request.path_params["unit"]
        if not text.isdigit():
            raise Refused(400, f"unit={text!r} is not valid; expected a unit's index")
        return respond(await compute(s.unit_png, int(text), pool=arrays), "image/png", cache=True)

    async def sprite(request):
        s = space(request)
        data, _, _ = await compute(s.sprite, pool=arrays)
        return respond(data, "image/png", cache=True)

    async def decode(request):
        s = space(request)
        body = await _json(request, body_timeout)
        if "code" not in body:
            raise Refused(400, 'body has no "code"; expected {"code": [numbers]}')
        try:
            code = s.check_codes(body["code"])
        except ValueError as e:
            raise Refused(400, str(e)) from None
        if len(code) != 1:
            raise Refused(400, f"code holds {len(code)} codes; expected one")
        return respond(await batcher.decode(s, code), "image/png")

    def directions_of(request) -> Directions:
        space(request)  # a model it serves, else 404
        return directions[request.path_params["model"]]

    async def groups(request):  # the groups, their directions, or why none
        return answer(await compute(directions_of(request).describe, pool=arrays))

    async def along(request):  # {"group", "t", "code"}: code + t * the group's direction
        d, body = directions_of(request), await _json(request, body_timeout)
        moved = await compute(d.along, body.get("group"), body.get("t"), body.get("code"))
        return respond(await batcher.decode(space(request), moved), "image/png")

    def _start(s: LatentSpace, x: np.ndarray) -> dict[str, Any]:
        code = s.encode(x[None])
        recon = s.decode(code.astype(np.float32))[0]
        original = to_uint8(x[None])[0]
        return {"code": code[0].tolist(), "original": _data_url(original),
                "reconstruction": _data_url(recon)}  # fmt: skip

    def picked(request, s: LatentSpace) -> np.ndarray:
        raw = request.path_params["index"]
        if not raw.isdigit():
            raise Refused(400, f"image={raw!r} is not valid; expected an index")
        try:
            return s.image(int(raw))
        except ValueError as e:
            raise Refused(404, str(e)) from None

    async def uploaded(request, s: LatentSpace) -> np.ndarray:
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind not in UPLOAD_TYPES:
            raise Refused(415, f"Content-Type={kind or 'none'!r}; allowed: PNG, JPEG or PGM/PPM")
        data = await _body(request, MAX_UPLOAD_BYTES, body_timeout)
        if not data:
            raise Refused(400, "the body is empty; expected an image file")
        return await compute(s.read_image, data)

    async def image(request):
        s = space(request)
        return answer(await compute(_start, s, picked(request, s)))

    async def encode(request):
        s = space(request)
        return answer(await compute(_start, s, await uploaded(request, s)))

    def maps_of(request) -> Unusual:
        space(request)  # an unknown model: 404
        return unusual[request.path_params["model"]]

    async def maps(request):  # whether the model gives calibrated maps, their scale
        return answer(await compute(maps_of(request).describe))

    async def image_map(request):
        judge = maps_of(request).judge
        return answer(await compute(judge, picked(request, space(request))))

    async def upload_map(request):
        judge = maps_of(request).judge
        return answer(await compute(judge, await uploaded(request, space(request))))

    async def random(request):
        s = space(request)
        seed = _number(request.query_params, "seed", 0.0)
        if seed != int(seed) or not 0 <= seed < 2**32:
            raise Refused(400, f"seed={seed:g} is not valid; expected an integer 0 to 2**32-1")
        approach = request.query_params.get("approach", "units")
        code = await compute(s.random_code, approach, int(seed))
        return answer({"code": np.asarray(code).tolist()})

    async def refused(request, exc: Refused):
        headers = {**SECURITY_HEADERS, "connection": "close"} if exc.close else SECURITY_HEADERS
        return JSONResponse({"error": str(exc)}, exc.status, headers=headers)

    async def http_error(request, exc: HTTPException):
        path = request.url.path
        message = {404: f"no such page: {path}",
                   405: f"method {request.method} is not allowed on {path}"}  # fmt: skip
        text = message.get(exc.status_code, str(exc.detail))
        return JSONResponse({"error": text}, exc.status_code, headers=SECURITY_HEADERS)

    async def failed(request, exc: Exception):  # a bug, never a traceback to the client
        return JSONResponse({"error": f"internal error: {type(exc).__name__}"}, 500)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        for pool in (executor, arrays):
            pool.shutdown(wait=False, cancel_futures=True)

    m = "/api/models/{model}"
    routes = [
        Route("/", index),
        Route("/static/{name}", static),
        Route("/api/models", models),
        Route(m, describe),
        Route(m + "/points", points),
        Route(m + "/sprite.png", sprite),
        Route(m + "/units", units),
        Route(m + "/units/{unit}.png", unit),
        Route(m + "/decode", decode, methods=["POST"]),
        Route(m + "/images/{index}", image),
        Route(m + "/encode", encode, methods=["POST"]),
        Route(m + "/anomaly", maps),
        Route(m + "/anomaly", upload_map, methods=["POST"]),
        Route(m + "/anomaly/{index}", image_map),
        Route(m + "/random", random),
        Route(m + "/groups", groups),
        Route(m + "/along", along, methods=["POST"]),
    ]
    hosts = list(allowed_hosts) if allowed_hosts else list(LOOPBACK_HOSTS)
    app = Starlette(
        routes=routes,
        middleware=[Middleware(HostCheck, hosts=hosts)],
        exception_handlers={Refused: refused, HTTPException: http_error, Exception: failed},
        lifespan=lifespan,
    )
    app.state.batcher = batcher
    app.state.spaces = spaces
    return app
