"""Request handling of the IHC kernel: validate a request, segment the image, build the response.

Everything here is plain Python (no ``redhareapi``), so it is tested directly;
``kernel.py`` only wires it into the WMLA EDI kernel API. :func:`process_request`
never raises: every problem comes back as ``status: "error"`` with a message. Writes on the
volume go through :mod:`volume_writes`, so a symbolic link planted on their path is refused.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import os
import re
import threading
import time
import uuid
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import ihc_pixels
import numpy as np
import volume_writes
from PIL import Image

DEFAULT_TILE_SIZE = 512
MIN_TILE_SIZE = 32
IMAGES_TO_RETURN = ("all", "modalities", "seg_masks")
MODALITIES = ("Hema", "DAB")
SEG_MASKS = ("Seg", "SegOverlaid")
MAX_TILE_SIZE = 1024  # larger tiles are processed in pieces of this size (same result, bounded memory)
MAX_PIXELS = 40_000_000  # larger images are refused before decoding
LOCAL_NAME = "local"  # base name of a serialized input image, as in seed 003

_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class RequestError(ValueError):
    """A request the kernel cannot serve; the message goes back to the caller."""


# ---------------------------------------------------------------------------- settings


def resolve_volume_root(setting: Callable[[str], str | None]) -> tuple[Path | None, str | None]:
    """The storage volume folder, from ``VOLUME_DIR`` or ``VOLUME_DISPLAY_NAME``.

    ``VOLUME_DIR`` is a folder path. ``VOLUME_DISPLAY_NAME`` names a local storage
    volume under ``$MLOPS_VOLUMES_DIR`` or ``$MLOPS_HOME/volumes`` (``~/.mlops/volumes``).
    Returns ``(folder or None, problem or None)``; the kernel serves serialized images
    without a volume, and answers volume requests with the problem.
    """
    direct = setting("VOLUME_DIR")
    if direct:
        root = Path(direct).expanduser()
        if not root.is_dir():
            return None, f"VOLUME_DIR {direct!r} is not a folder"
        return root.resolve(), None
    name = setting("VOLUME_DISPLAY_NAME")
    if not name:
        return None, "no storage volume configured (kernel setting VOLUME_DISPLAY_NAME or VOLUME_DIR)"
    if not _SAFE_ID.match(name):
        return None, f"VOLUME_DISPLAY_NAME {name!r} is not a valid volume name"
    base = os.environ.get("MLOPS_VOLUMES_DIR")
    if base:
        volumes = Path(base).expanduser()
    else:
        volumes = Path(os.environ.get("MLOPS_HOME") or Path.home() / ".mlops").expanduser() / "volumes"
    root = volumes / name
    if not root.is_dir():
        return None, f"storage volume {name!r} not found (no folder {root})"
    return root.resolve(), None


def safe_name(value: str | None, default: str) -> str:
    """A name usable as one path component (deployment and pod names)."""
    cleaned = _UNSAFE.sub("_", value or "").strip("._")
    return cleaned or default


# ---------------------------------------------------------------------------- images


def decode_png_base64(data: object) -> np.ndarray:
    if not isinstance(data, str) or not data.strip():
        raise RequestError("local_input_image must be a non-empty base64 string")
    text = data.strip()
    if text.startswith("data:") and "," in text:  # tolerate a data URL
        text = text.split(",", 1)[1]
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise RequestError(f"local_input_image is not valid base64: {exc}") from None
    return decode_image_bytes(raw, "local_input_image")


def decode_image_bytes(raw: bytes, what: str) -> np.ndarray:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(raw)) as img:
                width, height = img.size
                if width * height > MAX_PIXELS:
                    raise RequestError(f"{what}: {width}x{height} px is above the limit of {MAX_PIXELS} pixels")
                img.load()
                rgb = img.convert("RGB")
    except RequestError:
        raise
    except Exception as exc:
        raise RequestError(f"{what} is not a readable image: {type(exc).__name__}: {exc}") from None
    array = np.asarray(rgb)
    if array.shape[0] < 1 or array.shape[1] < 1:
        raise RequestError(f"{what} is an empty image")
    return array


def encode_png(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def overlay(rgb: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The input with cell outlines: positive red, negative blue (2 px wide)."""
    edge = np.zeros(labels.shape, dtype=bool)
    for axis in (0, 1):
        diff = np.diff(labels, axis=axis) != 0
        pad_before = [(0, 0), (0, 0)]
        pad_after = [(0, 0), (0, 0)]
        pad_before[axis] = (1, 0)
        pad_after[axis] = (0, 1)
        edge |= np.pad(diff, pad_before) | np.pad(diff, pad_after)
    out = rgb.copy()
    colours = ihc_pixels.CLASS_COLOURS
    for k in (1, 2):
        out[edge & (labels == k)] = colours[k]
    return out


def render_outputs(rgb: np.ndarray, labels: np.ndarray) -> dict[str, np.ndarray]:
    """All output images by suffix: modalities (Hema, DAB) and segmentation masks (Seg, SegOverlaid)."""
    hed = ihc_pixels.rgb_to_hed(rgb)
    return {
        "Hema": ihc_pixels.stain_to_rgb(hed, "hematoxylin"),
        "DAB": ihc_pixels.stain_to_rgb(hed, "dab"),
        "Seg": ihc_pixels.mask_from_labels(labels),
        "SegOverlaid": overlay(rgb, labels),
    }


def selected_suffixes(images_to_return: str) -> tuple[str, ...]:
    if images_to_return == "modalities":
        return MODALITIES
    if images_to_return == "seg_masks":
        return SEG_MASKS
    return MODALITIES + SEG_MASKS


# ---------------------------------------------------------------------------- validation


@dataclass
class Request:
    request_id: str
    tile_size: int
    images_to_return: str
    img_path_on_pvc: str | None
    local_input_image: str | None


def parse_request(payload: object) -> Request:
    """Validate the request fields of seed 003 (raises :class:`RequestError`)."""
    if not isinstance(payload, dict):
        raise RequestError(f"the request must be a JSON object, got {type(payload).__name__}")

    tile_size = payload.get("tile_size", DEFAULT_TILE_SIZE)
    if tile_size is None:
        tile_size = DEFAULT_TILE_SIZE
    if isinstance(tile_size, str) and tile_size.strip().isdigit():
        tile_size = int(tile_size.strip())
    if isinstance(tile_size, bool) or not isinstance(tile_size, int):
        raise RequestError(f"tile_size must be an integer number of pixels, got {tile_size!r}")
    if tile_size < MIN_TILE_SIZE:
        raise RequestError(f"tile_size must be at least {MIN_TILE_SIZE} pixels, got {tile_size}")

    images_to_return = payload.get("images_to_return", "all")
    if images_to_return is None:
        images_to_return = "all"
    if images_to_return not in IMAGES_TO_RETURN:
        raise RequestError(f"images_to_return must be one of {', '.join(IMAGES_TO_RETURN)}, got {images_to_return!r}")

    path = payload.get("img_path_on_pvc")
    local = payload.get("local_input_image")
    if path in (None, "") and local in (None, ""):
        raise RequestError("no input image: give img_path_on_pvc or local_input_image")
    if path not in (None, "") and not isinstance(path, str):
        raise RequestError(f"img_path_on_pvc must be a string, got {type(path).__name__}")
    return Request(
        request_id=request_id_of(payload),
        tile_size=tile_size,
        images_to_return=images_to_return,
        img_path_on_pvc=path or None,
        local_input_image=local if path in (None, "") else None,
    )


def request_id_of(payload: object) -> str:
    """The caller's request id (validated: it names a folder on the volume) or a new uuid."""
    if not isinstance(payload, dict) or payload.get("request_id") in (None, ""):
        return str(uuid.uuid4())
    value = payload["request_id"]
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not _SAFE_ID.match(value) or value in (".", ".."):
        raise RequestError(
            f"request_id must be 1-128 letters, digits, '.', '_' or '-' (it names a folder), got {value!r}"
        )
    return value


def resolve_on_volume(volume_root: Path, relative: str) -> Path:
    """``relative`` inside the volume; absolute paths and paths that leave the volume are refused."""
    if relative.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", relative):
        raise RequestError(f"img_path_on_pvc must be relative to the storage volume root, got {relative!r}")
    root = volume_root.resolve()
    target = (root / relative).resolve()
    if target == root or root not in target.parents:
        raise RequestError(f"img_path_on_pvc {relative!r} leaves the storage volume")
    return target


# ---------------------------------------------------------------------------- the service


class IhcService:
    """The state of one kernel: the model, the storage volume, and where its log goes."""

    def __init__(
        self,
        model: ihc_pixels.PixelModel,
        volume_root: Path | None = None,
        deployment: str = "ihc",
        pod: str = "local",
        volume_problem: str | None = None,
    ) -> None:
        self.model = model
        self.volume_root = Path(volume_root).resolve() if volume_root else None
        self.volume_problem = volume_problem
        self.deployment = safe_name(deployment, "ihc")
        self.pod = safe_name(pod, "local")
        self._log_lock = threading.Lock()
        self._setting: Callable[[str], str | None] | None = None

    def refresh_volume(self) -> None:
        """Look for the storage volume again: it may have been created after the kernel started."""
        if self.volume_root is None and self._setting is not None:
            self.volume_root, self.volume_problem = resolve_volume_root(self._setting)

    # -- construction from the kernel's settings (custom args / environment)

    @classmethod
    def from_settings(cls, setting: Callable[[str], str | None]) -> IhcService:
        model_path = setting("MODEL_DIR") or setting("REDHARE_MODEL_PATH")
        if not model_path:
            raise RuntimeError("no model location: set custom arg MODEL_DIR or env REDHARE_MODEL_PATH")
        model = ihc_pixels.load_model(model_path)
        volume_root, problem = resolve_volume_root(setting)
        service = cls(
            model,
            volume_root=volume_root,
            deployment=setting("REDHARE_MODEL_NAME") or "ihc",
            pod=setting("MSD_POD_NAME") or f"pod-{os.getpid()}",
            volume_problem=problem,
        )
        service._setting = setting
        service.volume_log(
            "-",
            f"kernel started: model {model.meta.get('model_path')}, "
            f"volume {service.volume_root or 'none (' + str(problem) + ')'}",
        )
        return service

    # -- volume layout of seed 003 (paths relative to the volume root)

    def deployment_relative(self) -> str:
        return f"edi_deployments/{self.deployment}"

    def log_relative(self) -> str:
        return f"{self.deployment_relative()}/edi_logs/{self.pod}_inference.log"

    def volume_log(self, request_id: str, message: str) -> str | None:
        """Append one line to the volume log (best effort); returns why if it was refused as unsafe."""
        if self.volume_root is None:
            return None
        line = f"{time.strftime('%Y-%m-%d %H:%M:%S')} [{self.pod}] [{request_id}] {message}\n"
        try:
            with self._log_lock:
                volume_writes.append_text(self.volume_root, self.log_relative(), line)
        except volume_writes.UnsafePath as exc:
            problem = f"refused to write the volume log {self.log_relative()}: {exc}"
            print(f"[ihc kernel] log line dropped: {problem}", flush=True)
            return problem
        except OSError as exc:
            print(f"[ihc kernel] cannot write the volume log {self.log_relative()}: {exc}", flush=True)
        return None

    # -- requests

    def handle_json(self, raw: str | bytes | dict | None) -> str:
        """The kernel entry point: a JSON request in, a JSON response out (an already parsed dict is fine)."""
        if isinstance(raw, dict):
            return json.dumps(self.process(raw))
        if isinstance(raw, (bytes, bytearray)):
            try:
                raw = raw.decode("utf-8")
            except UnicodeDecodeError:
                raw = None
        try:
            payload = json.loads(raw) if isinstance(raw, str) else None
        except (ValueError, RecursionError) as exc:  # RecursionError: nested too deep to parse
            payload = exc
        if payload is None or isinstance(payload, (ValueError, RecursionError)):
            detail = f": {payload}" if isinstance(payload, (ValueError, RecursionError)) else ""
            response = self._error(str(uuid.uuid4()), [], f"the request body is not valid JSON{detail}")
        else:
            response = self.process(payload)
        return json.dumps(response)

    def process(self, payload: object) -> dict:
        """Answer one request (a parsed JSON object). Never raises."""
        log: list[str] = []
        try:
            rid = request_id_of(payload)
        except RequestError as exc:
            return self._error(str(uuid.uuid4()), log, str(exc))
        problem = self.volume_log(rid, "request received")
        if problem is not None:  # a link (or FIFO) on the log's path: refuse rather than write through it
            return {"request_id": rid, "status": "error", "log": [f"error: {problem}"], "msg": problem}
        try:
            return self._process(parse_request(payload), log)
        except RequestError as exc:
            return self._error(rid, log, str(exc))
        except Exception as exc:  # never let a request take the kernel down
            return self._error(rid, log, f"internal error: {type(exc).__name__}: {exc}")

    def _error(self, request_id: str, log: list[str], message: str) -> dict:
        log.append(f"error: {message}")
        self.volume_log(request_id, f"error: {message}")
        return {"request_id": request_id, "status": "error", "log": log, "msg": message}

    def _note(self, request_id: str, log: list[str], message: str) -> None:
        log.append(message)
        self.volume_log(request_id, message)

    def _process(self, req: Request, log: list[str]) -> dict:
        started = time.perf_counter()
        rid = req.request_id
        if req.img_path_on_pvc is not None:
            self.refresh_volume()
            if self.volume_root is None:
                raise RequestError(f"img_path_on_pvc needs a storage volume, but {self.volume_problem}")
            source = resolve_on_volume(self.volume_root, req.img_path_on_pvc)
            if not source.is_file():
                raise RequestError(f"img_path_on_pvc {req.img_path_on_pvc!r} not found on the storage volume")
            rgb = decode_image_bytes(source.read_bytes(), f"img_path_on_pvc {req.img_path_on_pvc!r}")
            base = safe_name(source.stem, "image")
            self._note(rid, log, f"input: {req.img_path_on_pvc} on the storage volume, {_size(rgb)}")
        else:
            rgb = decode_png_base64(req.local_input_image)
            base = LOCAL_NAME
            self._note(rid, log, f"input: serialized image, {_size(rgb)}")

        height, width = rgb.shape[:2]
        tile = min(req.tile_size, MAX_TILE_SIZE)
        if tile < req.tile_size and max(height, width) > tile:
            self._note(rid, log, f"tile_size {req.tile_size} is processed as tiles of {tile} px (memory bound)")
        tiles = ihc_pixels.count_tiles(height, width, tile)
        t0 = time.perf_counter()
        labels = self.model.predict_labels(rgb, tile_size=tile)
        counts = np.bincount(labels.ravel(), minlength=3) / labels.size
        self._note(
            rid,
            log,
            f"segmented {tiles} tile(s) of up to {tile} px in {time.perf_counter() - t0:.2f} s: "
            f"positive {100 * counts[1]:.1f}%, negative {100 * counts[2]:.1f}% of pixels",
        )

        outputs = render_outputs(rgb, labels)
        chosen = {f"{base}_{suffix}.png": outputs[suffix] for suffix in selected_suffixes(req.images_to_return)}
        files = {f"{base}.png": rgb, **chosen}  # the input image is returned in all cases
        response = {"request_id": rid, "status": "finished", "log": log}

        if req.img_path_on_pvc is not None:
            relative = f"{self.deployment_relative()}/{rid}/output_dir"
            self._write_outputs(relative, files)
            response["output_dir"] = relative
            response["output_files"] = [f"{relative}/{name}" for name in files]
            self._note(rid, log, f"wrote {len(files)} image(s) to {relative} on the storage volume")
            where = f"written to {relative}"
        else:
            response["images"] = {
                name: base64.b64encode(encode_png(image)).decode("ascii") for name, image in files.items()
            }
            where = "returned"
        elapsed = time.perf_counter() - started
        response["msg"] = (
            f"finished: {width}x{height} image, {tiles} tile(s), {len(files)} image(s) {where} in {elapsed:.2f} s"
        )
        self.volume_log(rid, response["msg"])
        return response

    def _write_outputs(self, relative: str, files: dict[str, np.ndarray]) -> None:
        """Write the images to the folder ``relative`` on the volume; a link on the way is a request error."""
        try:
            with volume_writes.folder(self.volume_root, relative) as folder:
                for name, image in files.items():
                    volume_writes.write_file(folder, name, encode_png(image), f"{relative}/{name}")
        except volume_writes.UnsafePath as exc:
            raise RequestError(f"refused to write {relative} on the storage volume: {exc}") from None


def _size(rgb: np.ndarray) -> str:
    return f"{rgb.shape[1]}x{rgb.shape[0]} px"


def error_json(message: str, request_id: str | None = None) -> str:
    """A JSON error response (for the kernel's last line of defence)."""
    rid = request_id or str(uuid.uuid4())
    return json.dumps({"request_id": rid, "status": "error", "log": [f"error: {message}"], "msg": message})


def process_request(
    payload: object,
    model: ihc_pixels.PixelModel,
    volume_root: Path | None = None,
    deployment: str = "ihc",
    pod: str = "local",
) -> dict:
    """Answer one request with a given model and volume (a convenience over :class:`IhcService`)."""
    return IhcService(model, volume_root=volume_root, deployment=deployment, pod=pod).process(payload)
