"""Serve an image explainer over HTTP: PNG / JPEG bytes or base64 JSON in, values out.

``simshap serve simshap.onnx`` (an image explainer exported by the image run, with its
``simshap.onnx.json`` metadata) answers:

* ``GET /health``, ``GET /metadata``;
* ``POST /explain`` with the image's bytes (``Content-Type: image/png`` or ``image/jpeg``;
  query ``?heatmap=1&target=K``) or JSON ``{"image": "<base64>", "heatmap": true,
  "target": K}``. The answer is ``{"values": [d][K], "grid": [h, w], "prediction": [K],
  "base_values": [K], "target": K}`` and, with ``heatmap``, ``"heatmap_png"``: the target
  class's values as a base64 PNG of the image's size (red positive, blue negative).

Every bad request gets a 4xx with a JSON ``detail``: a wrong token (401), a wrong content type
(415), a body over the limit (413), a decompression bomb (413: more pixels than
``max_pixels``, checked by PIL from the header before decoding), bytes that are not an image,
malformed JSON or base64 (400), a wrong mode or size or an unknown target (422).
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from simshap.errors import MissingFileError, UserError
from simshap.serving.guard import api_token, bearer_ok

__all__ = ["ImageRequestError", "build_image_app", "decode_image", "heatmap_png", "is_image_export"]

MODES = {1: "L", 3: "RGB"}


class ImageRequestError(Exception):
    """A bad image request: ``status`` (4xx) and ``detail``."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


def is_image_export(path: str | Path) -> bool:
    """Whether ``path`` is an image explainer's ONNX file (its ``.json`` says ``modality``)."""
    meta = Path(str(path) + ".json")
    return meta.is_file() and json.loads(meta.read_text()).get("modality") == "image"


def decode_image(data: bytes, meta: dict[str, Any], max_pixels: int) -> np.ndarray:
    """Bytes -> normalized float32 ``(1, C, H, W)``; :class:`ImageRequestError` when bad."""
    c, h, w = meta["image_shape"]
    old = Image.MAX_IMAGE_PIXELS
    try:
        Image.MAX_IMAGE_PIXELS = max_pixels  # PIL raises DecompressionBombError above 2x
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                if img.format not in ("PNG", "JPEG"):
                    raise ImageRequestError(415, f"send PNG or JPEG, got {img.format}")
                if img.width * img.height > max_pixels:
                    raise ImageRequestError(
                        413, f"image of {img.width}x{img.height} pixels is over {max_pixels}"
                    )
                img.load()
                mode, size = img.mode, (img.height, img.width)
                arr = np.asarray(img, dtype=np.float32)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise ImageRequestError(413, f"decompression bomb refused: {err}") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise ImageRequestError(400, f"not a readable PNG or JPEG ({type(err).__name__})") from None
    finally:
        Image.MAX_IMAGE_PIXELS = old
    if mode != MODES[c]:
        raise ImageRequestError(
            422, f"image mode {mode!r}, expected {MODES[c]!r} ({c} channel(s)); convert it"
        )
    if size != (h, w):
        raise ImageRequestError(
            422, f"image of {size[0]}x{size[1]} pixels, expected {h}x{w}; resize it"
        )
    arr = arr.reshape(h, w, c).transpose(2, 0, 1) / 255.0
    mean = np.asarray(meta["mean"], np.float32).reshape(c, 1, 1)
    std = np.asarray(meta["std"], np.float32).reshape(c, 1, 1)
    return ((arr - mean) / std)[None].astype(np.float32)


def heatmap_png(values: np.ndarray, grid: list[int], size: tuple[int, int]) -> str:
    """Base64 PNG of one class's ``(d,)`` values on the grid, scaled to ``size`` (H, W)."""
    v = values.reshape(grid)
    v = v / max(float(np.abs(v).max()), 1e-12)
    rgb = np.full((*grid, 3), 255.0)
    rgb[..., 1] -= 255 * np.abs(v)
    rgb[..., 2] -= 255 * np.clip(v, 0, None)
    rgb[..., 0] -= 255 * np.clip(-v, 0, None)
    img = Image.fromarray(rgb.clip(0, 255).astype(np.uint8)).resize(
        (size[1], size[0]), Image.NEAREST
    )
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def _json(content: Any, status: int = 200) -> Response:
    return Response(json.dumps(content), status_code=status, media_type="application/json")


async def _body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ImageRequestError(413, f"body of {declared} bytes is over {limit}")
    chunks, n = [], 0
    async for chunk in request.stream():
        n += len(chunk)
        if n > limit:
            raise ImageRequestError(413, f"body over {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _parse(body: bytes, ctype: str, query: Any) -> tuple[bytes, bool, Any]:
    if ctype in ("image/png", "image/jpeg"):
        return body, query.get("heatmap", "0") in ("1", "true"), query.get("target")
    if ctype != "application/json":
        raise ImageRequestError(415, "send image/png, image/jpeg or application/json")
    try:
        obj = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise ImageRequestError(400, "malformed JSON") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("image"), str):
        raise ImageRequestError(422, 'JSON needs {"image": "<base64 PNG or JPEG>"}')
    try:
        data = base64.b64decode(obj["image"], validate=True)
    except (binascii.Error, ValueError):
        raise ImageRequestError(400, "image is not valid base64") from None
    return data, bool(obj.get("heatmap", False)), obj.get("target")


def build_image_app(
    model_path: str, max_body_bytes: int = 8 << 20, max_pixels: int | None = None
) -> Starlette:
    """The ASGI app of an exported image explainer (ONNX Runtime).

    Args:
        model_path: the ``.onnx`` file (with its ``.json`` metadata).
        max_body_bytes: the largest request body (413 above it).
        max_pixels: the most pixels an image may declare (default 4x the model's).
    """
    import onnxruntime as ort

    if not is_image_export(model_path):
        raise MissingFileError(f"{model_path} is not an image explainer export (no .json)")
    meta = json.loads(Path(str(model_path) + ".json").read_text())
    c, h, w = meta["image_shape"]
    max_pixels = max_pixels or 4 * h * w
    token = api_token()
    session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    k = len(meta["base_value"])

    async def health(request: Request) -> Response:
        return PlainTextResponse("ok")

    def _auth(request: Request) -> None:
        if token is not None and not bearer_ok(request.headers.get("authorization"), token):
            raise ImageRequestError(401, "missing or wrong bearer token")

    async def metadata(request: Request) -> Response:
        try:
            _auth(request)
        except ImageRequestError as err:
            return _json({"detail": err.detail}, err.status)
        return _json(meta)

    async def explain(request: Request) -> Response:
        try:
            _auth(request)
            ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
            if ctype not in ("image/png", "image/jpeg", "application/json"):
                raise ImageRequestError(415, "send image/png, image/jpeg or application/json")
            body = await _body(request, max_body_bytes)
            data, heatmap, target = _parse(body, ctype, request.query_params)
            x = decode_image(data, meta, max_pixels)
            values, pred = session.run(None, {"images": x})
            if target is None:
                target = int(pred[0].argmax())
            elif isinstance(target, bool) or not str(target).isdigit() or int(target) >= k:
                raise ImageRequestError(422, f"target must be a class index below {k}")
            target = int(target)
        except ImageRequestError as err:
            return _json({"detail": err.detail}, err.status)
        out = {
            "values": values[0].tolist(),
            "grid": meta["grid"],
            "prediction": pred[0].tolist(),
            "base_values": meta["base_value"],
            "target": target,
        }
        if heatmap:
            out["heatmap_png"] = heatmap_png(values[0][:, target], meta["grid"], (h, w))
        return _json(out)

    if c not in MODES:
        raise UserError(f"image exports need 1 or 3 channels, got {c}")
    routes = [
        Route("/health", health, methods=["GET"]),
        Route("/metadata", metadata, methods=["GET"]),
        Route("/explain", explain, methods=["POST"]),
    ]
    return Starlette(routes=routes)
