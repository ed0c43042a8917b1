"""The cpd storage volumes against the fake CPD's zen-volumes file server: round trips, refused paths, and the
errors users rely on (missing files and unknown volumes are NotFound naming the field)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline_utils.backends import create
from pipeline_utils.backends.cpd.http import CpdService
from pipeline_utils.backends.cpd.settings import CpdSettings
from pipeline_utils.backends.cpd.volumes import CpdVolumes
from pipeline_utils.errors import BadInput, NotFound
from pipeline_utils.volumes import FileInfo, volume
from tests.fakes.cpd import FakeCpd, running_fake_cpd

pytestmark = pytest.mark.slow

NAME = "data"


@pytest.fixture(scope="module")
def fake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeCpd]:
    """One fake CPD for the module (each test uses its own folder on the volume)."""
    with running_fake_cpd(tmp_path_factory.mktemp("fake-cpd"), volumes=[NAME]) as running:
        yield running


@pytest.fixture
def volumes(fake: FakeCpd) -> CpdVolumes:
    return CpdVolumes.from_environment(fake.env())


def _file_requests(fake: FakeCpd) -> list[str]:
    return [f"{r['method']} {r['path']}" for r in fake.requests() if r["path"].startswith("/zen-volumes/")]


def test_fake_cpd_volume_round_trip(fake: FakeCpd, volumes: CpdVolumes) -> None:
    before = time.time()
    info = volumes.write_bytes(NAME, "trip/deep/er/x.bin", b"first")
    assert (info.path, info.size, info.is_dir) == ("trip/deep/er/x.bin", 5, False)
    assert info.mtime == pytest.approx(before, abs=5)
    volumes.write_bytes(NAME, "trip/deep/er/x.bin", b"second!")
    volumes.write_bytes(NAME, "./trip//top.txt", b"")
    assert volumes.read_bytes(NAME, "trip/deep/er/x.bin") == b"second!"
    assert (fake.state_dir / "volumes" / NAME / "trip/deep/er/x.bin").read_bytes() == b"second!"
    assert [(f.path, f.is_dir, f.size) for f in volumes.list(NAME, "trip")] == [
        ("trip/deep", True, 0),
        ("trip/top.txt", False, 0),
    ]
    assert "trip" in [f.path for f in volumes.list(NAME)]
    assert volumes.list(NAME, "trip/missing") == []
    assert volumes.stat(NAME, "trip/deep/er/x.bin") == FileInfo("trip/deep/er/x.bin", 7, info.mtime, False)
    assert volumes.stat(NAME, "trip/deep/").is_dir and volumes.stat(NAME, "").is_dir
    assert volumes.exists(NAME) and volumes.exists(NAME, "trip/top.txt") and not volumes.exists(NAME, "trip/no")
    made = volumes.mkdir(NAME, "trip/new/folder")
    assert (made.path, made.is_dir) == ("trip/new/folder", True)
    assert volumes.mkdir(NAME, "trip/new/folder") == made
    assert volumes.mkdir(NAME, "trip/deep").is_dir
    assert [f.name for f in volumes.list(NAME, "trip/new/folder")] == [".keep"]
    assert volumes.local_path(NAME, "trip") is None
    assert "PUT /zen-volumes/data/v1/volumes/files/trip%2Fdeep%2Fer%2Fx.bin" in _file_requests(fake)
    assert "GET /zen-volumes/data/v1/volumes/directories/%2F" in _file_requests(fake)


def test_fake_cpd_volumes_are_the_configured_backend(fake: FakeCpd, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in fake.env().items():
        monkeypatch.setenv(key, value)
    store = create("volumes")
    assert isinstance(store, CpdVolumes) and NAME in store.list_volumes()
    assert store.diagnose().startswith(f"{len(store.list_volumes())} storage volumes at {fake.url}/zen-data/")
    store.create_volume(NAME)
    handle = volume(NAME)
    handle.write_bytes("handle/a.txt", b"via handle")
    assert handle.read_bytes("handle/a.txt") == b"via handle" and handle.exists("handle")
    with pytest.raises(TypeError, match="not mounted on this machine"):
        os.fspath(handle)


@pytest.mark.parametrize("path", ["..", "../other", "a/../../other", "/etc/passwd", "\\..\\x"])
def test_fake_cpd_volume_paths_leaving_the_volume_are_refused_before_any_request(
    fake: FakeCpd, volumes: CpdVolumes, path: str
) -> None:
    calls = [
        lambda: volumes.list(NAME, path),
        lambda: volumes.stat(NAME, path),
        lambda: volumes.exists(NAME, path),
        lambda: volumes.read_bytes(NAME, path),
        lambda: volumes.write_bytes(NAME, path, b"x"),
        lambda: volumes.mkdir(NAME, path),
    ]
    seen = len(fake.requests())
    for call in calls:
        with pytest.raises(BadInput, match=r"^path: ") as caught:
            call()
        assert caught.value.field == "path"
    assert len(fake.requests()) == seen + 1  # only this check's own request to the log


def test_fake_cpd_file_server_itself_refuses_paths_leaving_the_volume(
    fake: FakeCpd, volumes: CpdVolumes, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.png").write_bytes(b"secret")
    root = fake.state_dir / "volumes" / NAME
    (root / "links").mkdir()
    (root / "links" / "a.png").write_bytes(b"inside")
    (root / "links" / "leak.png").symlink_to(outside / "secret.png")
    (root / "links" / "alias.png").symlink_to(root / "links" / "a.png")
    (root / "out").symlink_to(outside)
    raw = CpdService(CpdSettings.from_environment(fake.env()), "raw client", fake.url)
    with pytest.raises(BadInput, match="400 Bad Request: The path '../../outside/secret.png' leaves the volume"):
        raw.request("GET", f"/zen-volumes/{NAME}/v1/volumes/files/..%2F..%2Foutside%2Fsecret.png")
    for call in (
        lambda: volumes.read_bytes(NAME, "links/leak.png"),
        lambda: volumes.read_bytes(NAME, "out/secret.png"),
        lambda: volumes.list(NAME, "out"),
        lambda: volumes.write_bytes(NAME, "out/new.png", b"x"),
    ):
        with pytest.raises(BadInput, match=r"^path: '.*' refused by CPD storage volumes .* leaves the volume"):
            call()
    assert [f.name for f in volumes.list(NAME, "links")] == ["a.png", "alias.png"]
    assert volumes.read_bytes(NAME, "links/alias.png") == b"inside"
    assert sorted(p.name for p in outside.iterdir()) == ["secret.png"]


def test_fake_cpd_missing_paths_and_unknown_volumes_are_not_found(volumes: CpdVolumes) -> None:
    volumes.write_bytes(NAME, "missing/x.bin", b"x")
    with pytest.raises(NotFound, match=r"^path: no file 'missing/none.bin' on volume 'data' \(CPD storage volumes GET"):
        volumes.read_bytes(NAME, "missing/none.bin")
    with pytest.raises(NotFound, match=r"^path: no file 'missing' on volume 'data': it is a folder"):
        volumes.read_bytes(NAME, "missing")
    with pytest.raises(NotFound, match=r"^path: 'missing/none.bin' not found on volume 'data'"):
        volumes.stat(NAME, "missing/none.bin")
    with pytest.raises(NotFound, match=r"^path: 'nowhere/none.bin' not found"):
        volumes.stat(NAME, "nowhere/none.bin")
    with pytest.raises(BadInput, match=r"^path: 'missing' refused by .*'missing' is a directory"):
        volumes.write_bytes(NAME, "missing", b"x")
    with pytest.raises(BadInput, match=r"^path: 'missing/x.bin' is a file on volume 'data', not a folder"):
        volumes.mkdir(NAME, "missing/x.bin")
    with pytest.raises(BadInput, match=r"^path: a file path is needed"):
        volumes.write_bytes(NAME, "", b"x")
    assert not volumes.exists("NoSuchVolume") and not volumes.exists("NoSuchVolume", "a.png")
    for call in (
        lambda: volumes.list("NoSuchVolume"),
        lambda: volumes.stat("NoSuchVolume", "a.png"),
        lambda: volumes.read_bytes("NoSuchVolume", "a.png"),
        lambda: volumes.write_bytes("NoSuchVolume", "a.png", b"x"),
        lambda: volumes.mkdir("NoSuchVolume", "a"),
    ):
        with pytest.raises(NotFound, match=r"^volume_display_name: unknown volume 'NoSuchVolume'") as caught:
            call()
        assert caught.value.field == "volume_display_name"
    with pytest.raises(BadInput, match=r"^volume_display_name: storage volume 'Other' does not exist .*CPD console"):
        volumes.create_volume("Other")
    with pytest.raises(BadInput, match=r"^volume_display_name: '\.\./x' is not a valid volume name"):
        volumes.list("../x")
