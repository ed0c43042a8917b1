"""Request handling of the IHC kernel (``ihc_kernel/ihc_service.py``), called directly."""

from __future__ import annotations

import base64
import io
import json
import uuid

import ihc_pixels
import ihc_service
import numpy as np
import pytest
import synthetic
from PIL import Image

from tests.example_ihc.helpers import DEPLOYMENT

ALL = {"local.png", "local_Hema.png", "local_DAB.png", "local_Seg.png", "local_SegOverlaid.png"}


def decode(b64: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(b64))).convert("RGB"))


@pytest.fixture(scope="module")
def tile():
    return synthetic.make_tile(size=160, seed=11, index=0)


@pytest.fixture
def service(model, volume):
    return ihc_service.IhcService(model, volume_root=volume, deployment="ihc-demo", pod="ihc-demo-pod-1")


def finished(response: dict) -> dict:
    assert response["status"] == "finished", response
    assert isinstance(response["log"], list) and response["log"]
    assert response["msg"].startswith("finished")
    return response


# ---------------------------------------------------------------------------- serialized images


def test_base64_request_returns_all_images(service, model, tile):
    image, mask = tile
    response = finished(service.process({"local_input_image": synthetic.png_base64(image), "request_id": "r-1"}))
    assert response["request_id"] == "r-1"
    assert set(response["images"]) == ALL
    assert np.array_equal(decode(response["images"]["local.png"]), image)  # the input comes back
    seg = decode(response["images"]["local_Seg.png"])
    assert {tuple(c) for c in np.unique(seg.reshape(-1, 3), axis=0)} <= {(0, 0, 0), (255, 0, 0), (0, 0, 255)}
    assert np.array_equal(ihc_pixels.labels_from_mask(seg), model.predict_labels(image))
    assert (ihc_pixels.labels_from_mask(seg) == ihc_pixels.labels_from_mask(mask)).mean() > 0.95
    hema = decode(response["images"]["local_Hema.png"]).astype(int)
    negative = ihc_pixels.labels_from_mask(mask) == 2
    assert hema[negative].sum(axis=-1).mean() < hema[~negative].sum(axis=-1).mean() - 60  # nuclei dark in Hema
    overlaid = decode(response["images"]["local_SegOverlaid.png"])
    assert overlaid.shape == image.shape and not np.array_equal(overlaid, image)
    assert "output_dir" not in response
    assert not (service.volume_root / "edi_deployments" / "ihc-demo" / "r-1").exists()


@pytest.mark.parametrize(
    ("which", "expected"),
    [
        ("all", ALL),
        ("modalities", {"local.png", "local_Hema.png", "local_DAB.png"}),
        ("seg_masks", {"local.png", "local_Seg.png", "local_SegOverlaid.png"}),
        (None, ALL),
    ],
)
def test_images_to_return(service, tile, which, expected):
    payload = {"local_input_image": synthetic.png_base64(tile[0])}
    if which is not None:
        payload["images_to_return"] = which
    assert set(finished(service.process(payload))["images"]) == expected


def test_request_id_is_generated_when_absent(service, tile):
    response = finished(service.process({"local_input_image": synthetic.png_base64(tile[0])}))
    assert uuid.UUID(response["request_id"])


def test_tile_size_default_smaller_and_larger_than_the_image(service, tile):
    b64 = synthetic.png_base64(tile[0])
    default = finished(service.process({"local_input_image": b64}))
    assert "1 tile(s) of up to 512 px" in " ".join(default["log"])
    small = finished(service.process({"local_input_image": b64, "tile_size": 64}))  # 160 px -> 3 x 3 tiles
    assert "9 tile(s) of up to 64 px" in " ".join(small["log"])
    assert small["images"]["local_Seg.png"] == default["images"]["local_Seg.png"]  # no seams
    large = finished(service.process({"local_input_image": b64, "tile_size": 4096}))
    assert large["images"]["local_Seg.png"] == default["images"]["local_Seg.png"]
    assert "1 tile(s)" in finished(service.process({"local_input_image": b64, "tile_size": "512"}))["msg"]


def test_huge_tiles_are_processed_in_bounded_pieces(service, monkeypatch, tile):
    b64 = synthetic.png_base64(tile[0])
    with monkeypatch.context() as patched:
        patched.setattr(ihc_service, "MAX_TILE_SIZE", 64)
        reference = finished(service.process({"local_input_image": b64, "tile_size": 512}))
    capped = finished(ihc_service.IhcService(service.model).process({"local_input_image": b64, "tile_size": 512}))
    assert "processed as tiles of 64 px" in " ".join(reference["log"])
    assert reference["images"]["local_Seg.png"] == capped["images"]["local_Seg.png"]


def test_non_rgb_input_is_converted(service, tile):
    buf = io.BytesIO()
    Image.fromarray(tile[0]).convert("RGBA").save(buf, format="PNG")
    response = finished(service.process({"local_input_image": base64.b64encode(buf.getvalue()).decode()}))
    assert decode(response["images"]["local_Seg.png"]).shape == tile[0].shape


# ---------------------------------------------------------------------------- storage volume


def test_volume_request_writes_outputs_and_log_in_the_seed_layout(service, volume, tile):
    (volume / "inputs").mkdir()
    Image.fromarray(tile[0]).save(volume / "inputs" / "slide 1.png")
    response = finished(
        service.process({"img_path_on_pvc": "inputs/slide 1.png", "request_id": "req-42", "tile_size": 100})
    )
    out = volume / "edi_deployments" / "ihc-demo" / "req-42" / "output_dir"
    names = {"slide_1.png", "slide_1_Hema.png", "slide_1_DAB.png", "slide_1_Seg.png", "slide_1_SegOverlaid.png"}
    assert {p.name for p in out.iterdir()} == names
    assert response["output_dir"] == "edi_deployments/ihc-demo/req-42/output_dir"
    assert sorted(response["output_files"]) == sorted(f"{response['output_dir']}/{n}" for n in names)
    assert "images" not in response
    assert np.array_equal(np.asarray(Image.open(out / "slide_1.png")), tile[0])
    log = volume / "edi_deployments" / "ihc-demo" / "edi_logs" / "ihc-demo-pod-1_inference.log"
    text = log.read_text()
    assert "[req-42]" in text and "finished" in text and "inputs/slide 1.png" in text

    again = finished(service.process({"img_path_on_pvc": "inputs/slide 1.png", "images_to_return": "seg_masks"}))
    out2 = volume / "edi_deployments" / "ihc-demo" / again["request_id"] / "output_dir"
    assert {p.name for p in out2.iterdir()} == {"slide_1.png", "slide_1_Seg.png", "slide_1_SegOverlaid.png"}


def test_volume_path_wins_over_the_serialized_image(service, volume, tile):
    Image.fromarray(tile[0]).save(volume / "a.png")
    response = finished(service.process({"img_path_on_pvc": "a.png", "local_input_image": "not an image"}))
    assert "images" not in response and response["output_dir"].endswith("/output_dir")


def test_volume_found_by_display_name_under_mlops_home(model, volume, monkeypatch, tile):
    settings = {"MODEL_DIR": None, "VOLUME_DISPLAY_NAME": "ihc-volume"}
    root, problem = ihc_service.resolve_volume_root(settings.get)
    assert root == volume.resolve() and problem is None
    root, problem = ihc_service.resolve_volume_root({"VOLUME_DISPLAY_NAME": "nope"}.get)
    assert root is None and "'nope' not found" in problem
    root, problem = ihc_service.resolve_volume_root({"VOLUME_DIR": str(volume)}.get)
    assert root == volume.resolve()
    monkeypatch.setenv("MLOPS_VOLUMES_DIR", str(volume.parent.parent / "elsewhere"))
    (volume.parent.parent / "elsewhere" / "ihc-volume").mkdir(parents=True)
    root, _ = ihc_service.resolve_volume_root({"VOLUME_DISPLAY_NAME": "ihc-volume"}.get)
    assert root == (volume.parent.parent / "elsewhere" / "ihc-volume").resolve()


# ---------------------------------------------------------------------------- bad requests


def image_b64(tile) -> str:
    return synthetic.png_base64(tile[0])


BAD = [
    ({}, "no input image"),
    ({"request_id": "x"}, "no input image"),
    ({"local_input_image": "IMG", "images_to_return": "what"}, "images_to_return must be one of"),
    ({"local_input_image": "IMG", "tile_size": 512.123}, "tile_size must be an integer"),
    ({"local_input_image": "IMG", "tile_size": 0}, "tile_size must be at least 32"),
    ({"local_input_image": "IMG", "tile_size": -5}, "tile_size must be at least 32"),
    ({"local_input_image": "IMG", "tile_size": True}, "tile_size must be an integer"),
    ({"local_input_image": "IMG", "tile_size": "big"}, "tile_size must be an integer"),
    ({"local_input_image": base64.b64encode(b"\x89PNG\r\n\x1a\n garbage").decode()}, "not a readable image"),
    ({"local_input_image": "%%% not base64 %%%"}, "not valid base64"),
    ({"local_input_image": 42}, "must be a non-empty base64 string"),
    ({"img_path_on_pvc": "../outside.png"}, "leaves the storage volume"),
    ({"img_path_on_pvc": "inputs/../../outside.png"}, "leaves the storage volume"),
    ({"img_path_on_pvc": "/etc/passwd"}, "must be relative to the storage volume root"),
    ({"img_path_on_pvc": "missing.png"}, "not found on the storage volume"),
    ({"img_path_on_pvc": "corrupt.png"}, "not a readable image"),
    ({"img_path_on_pvc": ["a.png"]}, "img_path_on_pvc must be a string"),
    ({"local_input_image": "IMG", "request_id": "../../etc"}, "request_id must be"),
    ([1, 2], "must be a JSON object"),
]


@pytest.mark.parametrize(("payload", "message"), BAD, ids=[m for _, m in BAD])
def test_bad_requests_get_an_error_status_and_the_service_keeps_serving(service, volume, tile, payload, message):
    (volume / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really a png")
    (volume.parent / "outside.png").write_bytes(b"secret")
    if isinstance(payload, dict):
        payload = {k: (image_b64(tile) if v == "IMG" else v) for k, v in payload.items()}
    response = service.process(payload)
    assert response["status"] == "error"
    assert message in response["msg"], response["msg"]
    assert response["log"][-1] == f"error: {response['msg']}"
    assert set(response) == {"request_id", "status", "log", "msg"}
    if isinstance(payload, dict) and payload.get("request_id") == "x":
        assert response["request_id"] == "x"
    log = volume / "edi_deployments" / "ihc-demo" / "edi_logs" / "ihc-demo-pod-1_inference.log"
    assert message in log.read_text()
    finished(service.process({"local_input_image": image_b64(tile), "images_to_return": "seg_masks"}))


def test_volume_request_without_a_volume_is_an_error(model, tile):
    service = ihc_service.IhcService(model, volume_root=None, volume_problem="no storage volume configured")
    response = service.process({"img_path_on_pvc": "a.png"})
    assert response["status"] == "error" and "needs a storage volume" in response["msg"]
    finished(service.process({"local_input_image": image_b64(tile)}))


def test_symlink_out_of_the_volume_is_refused(service, volume, tmp_path, tile):
    Image.fromarray(tile[0]).save(tmp_path / "outside.png")
    (volume / "link.png").symlink_to(tmp_path / "outside.png")
    response = service.process({"img_path_on_pvc": "link.png"})
    assert response["status"] == "error" and "leaves the storage volume" in response["msg"]


def test_invalid_json_bodies(service):
    for raw in ("{not json", b"\xff\xfe", None, ""):
        response = json.loads(service.handle_json(raw))
        assert response["status"] == "error" and "not valid JSON" in response["msg"]
        assert uuid.UUID(response["request_id"])
    response = json.loads(service.handle_json({"request_id": "as-dict"}))  # an already parsed body
    assert response["request_id"] == "as-dict" and "no input image" in response["msg"]


def test_internal_errors_are_answered_not_raised(model, tile):
    class Broken:
        meta: dict = {}

        def predict_labels(self, *args, **kwargs):
            raise MemoryError("out of memory in the classifier")

    service = ihc_service.IhcService(Broken())
    response = service.process({"local_input_image": image_b64(tile), "request_id": "boom"})
    assert response["status"] == "error" and response["request_id"] == "boom"
    assert "internal error: MemoryError" in response["msg"]


# ---------------------------------------------------------------------------- the sample request


def test_sample_request_is_the_documented_synthetic_tile_and_is_served(service):
    sample = json.loads((DEPLOYMENT / "sample_request.json").read_text())
    expected = synthetic.sample_request()
    assert {k: v for k, v in sample.items() if k != "local_input_image"} == {
        k: v for k, v in expected.items() if k != "local_input_image"
    }
    assert np.array_equal(decode(sample["local_input_image"]), decode(expected["local_input_image"]))
    response = finished(json.loads(service.handle_json(json.dumps(sample))))
    assert set(response["images"]) == ALL and response["request_id"] == "sample-request"


def test_process_request_function(model, volume, tile):
    Image.fromarray(tile[0]).save(volume / "t.png")
    response = ihc_service.process_request(
        {"img_path_on_pvc": "t.png", "request_id": "fn"}, model, volume_root=volume, deployment="d1", pod="p1"
    )
    finished(response)
    assert (volume / "edi_deployments" / "d1" / "fn" / "output_dir" / "t_Seg.png").is_file()
    assert (volume / "edi_deployments" / "d1" / "edi_logs" / "p1_inference.log").is_file()


def test_a_volume_created_after_the_kernel_started_is_found(tmp_path, monkeypatch):
    """The demo writes its images to the volume after deploying: the kernel must look again."""
    monkeypatch.setenv("MLOPS_VOLUMES_DIR", str(tmp_path / "volumes"))
    settings = {"VOLUME_DISPLAY_NAME": "LateVolume"}
    volume_root, problem = ihc_service.resolve_volume_root(settings.get)
    assert volume_root is None and "LateVolume" in problem
    service = ihc_service.IhcService(model=None, volume_root=None, volume_problem=problem)
    service._setting = settings.get
    (tmp_path / "volumes" / "LateVolume").mkdir(parents=True)
    service.refresh_volume()
    assert service.volume_root == (tmp_path / "volumes" / "LateVolume").resolve()
