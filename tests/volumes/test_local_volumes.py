"""The local storage volumes through the interface: list and stat with mtime, atomic writes, reads, and paths
that cannot leave the volume (``..``, absolute paths, links), each refused with the field named."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from pipeline_utils.errors import BadInput, NotFound
from pipeline_utils.volumes import FileInfo, StorageVolumes, Volume, as_volume, get_volumes, volume

NAME = "TestVolume"


@pytest.fixture
def volumes() -> StorageVolumes:
    store = get_volumes()
    store.create_volume(NAME)
    return store


@pytest.fixture
def root(volumes: StorageVolumes) -> Path:
    return volumes.local_path(NAME)


def test_the_registry_gives_folders_under_the_state_directory(mlops_home: Path, tmp_path: Path, monkeypatch) -> None:
    store = get_volumes()
    store.create_volume(NAME)
    assert store.local_path(NAME) == (mlops_home / "volumes" / NAME).resolve()
    assert store.list_volumes() == [NAME]
    monkeypatch.setenv("MLOPS_VOLUMES_DIR", str(tmp_path / "elsewhere"))
    moved = get_volumes()
    assert moved.list_volumes() == []
    moved.create_volume(NAME)
    moved.create_volume(NAME)  # idempotent
    assert moved.local_path(NAME) == (tmp_path / "elsewhere" / NAME).resolve()


def test_list_and_stat_give_size_and_mtime(volumes: StorageVolumes, root: Path) -> None:
    (root / "data" / "sub").mkdir(parents=True)
    (root / "data" / "b.png").write_bytes(b"12345")
    (root / "data" / "a.txt").write_bytes(b"")
    stamp = time.time() - 3 * 86400
    os.utime(root / "data" / "b.png", (stamp, stamp))
    listed = volumes.list(NAME, "data")
    assert [(f.path, f.name, f.is_dir) for f in listed] == [
        ("data/a.txt", "a.txt", False),
        ("data/b.png", "b.png", False),
        ("data/sub", "sub", True),
    ]
    assert listed[1].size == 5 and listed[1].mtime == pytest.approx(stamp)
    assert volumes.stat(NAME, "data/b.png") == FileInfo("data/b.png", 5, listed[1].mtime, False)
    assert volumes.stat(NAME, "./data//sub/").is_dir
    assert [f.path for f in volumes.list(NAME)] == ["data"]
    assert volumes.list(NAME, "missing") == []
    with pytest.raises(NotFound, match=r"^path: 'data/none.png' not found"):
        volumes.stat(NAME, "data/none.png")


def test_read_and_write(volumes: StorageVolumes, root: Path) -> None:
    handle = volumes.volume(NAME)
    info = handle.write_bytes("out/deep/x.bin", b"first")
    assert (info.path, info.size, info.is_dir) == ("out/deep/x.bin", 5, False)
    handle.write_bytes("out/deep/x.bin", b"second")
    assert handle.read_bytes("out/deep/x.bin") == b"second"
    assert (root / "out/deep/x.bin").read_bytes() == b"second"
    assert sorted(p.name for p in (root / "out/deep").iterdir()) == ["x.bin"]  # no temporary files left
    assert handle.exists("out/deep/x.bin") and not handle.exists("out/none")
    assert handle.mkdir("out/new/folder").is_dir and handle.mkdir("out/new/folder").is_dir
    with pytest.raises(NotFound, match=r"^path: no file 'out/deep'"):
        handle.read_bytes("out/deep")
    with pytest.raises(NotFound, match=r"^path: no file 'out/none.bin'"):
        handle.read_bytes("out/none.bin")
    with pytest.raises(BadInput, match=r"^path: 'out/deep' is a folder"):
        handle.write_bytes("out/deep", b"x")
    with pytest.raises(BadInput, match=r"^path: 'out/deep/x.bin' is a file"):
        handle.mkdir("out/deep/x.bin")
    with pytest.raises(BadInput, match=r"^path: a file path is needed"):
        handle.write_bytes("", b"x")


def test_write_bytes_is_atomic(volumes: StorageVolumes) -> None:
    handle = volumes.volume(NAME)
    contents = (b"a" * 4_000_000, b"b" * 3_000_000)
    handle.write_bytes("big.bin", contents[0])
    seen: set[bytes] = set()
    done = threading.Event()

    def read() -> None:
        while not done.is_set():
            data = handle.read_bytes("big.bin")
            assert data in contents, f"a reader saw {len(data)} bytes"
            seen.add(data[:1])

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for i in range(40):
            handle.write_bytes("big.bin", contents[i % 2])
    finally:
        done.set()
        reader.join()
    assert seen <= {b"a", b"b"}


@pytest.mark.parametrize("path", ["..", "../other", "a/../../other", "a/b/../../..", "/etc/passwd", "\\..\\x"])
def test_paths_that_leave_the_volume_are_refused(volumes: StorageVolumes, path: str) -> None:
    handle = volumes.volume(NAME)
    calls = [
        lambda: handle.list(path),
        lambda: handle.stat(path),
        lambda: handle.exists(path),
        lambda: handle.read_bytes(path),
        lambda: handle.write_bytes(path, b"x"),
        lambda: handle.mkdir(path),
        lambda: handle.local_path(path),
    ]
    for call in calls:
        with pytest.raises(BadInput, match=r"^path: ") as caught:
            call()
        assert caught.value.field == "path"


def test_links_that_leave_the_volume_are_refused(volumes: StorageVolumes, root: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.png").write_bytes(b"secret")
    (root / "gt").mkdir()
    (root / "gt" / "a.png").write_bytes(b"inside")
    (root / "gt" / "leak.png").symlink_to(outside / "secret.png")
    (root / "gt" / "alias.png").symlink_to(root / "gt" / "a.png")
    (root / "out").symlink_to(outside)
    handle = volumes.volume(NAME)
    for call in (
        lambda: handle.read_bytes("gt/leak.png"),
        lambda: handle.stat("gt/leak.png"),
        lambda: handle.read_bytes("out/secret.png"),
        lambda: handle.list("out"),
        lambda: handle.write_bytes("out/new.png", b"x"),
        lambda: handle.mkdir("out/sub"),
    ):
        with pytest.raises(BadInput, match=r"^path: '.*' leaves the storage volume") as caught:
            call()
        assert caught.value.field == "path"
    assert sorted(p.name for p in outside.iterdir()) == ["secret.png"]
    assert [f.name for f in handle.list("gt")] == ["a.png", "alias.png"]
    assert [f.name for f in handle.list()] == ["gt"]
    assert handle.read_bytes("gt/alias.png") == b"inside"


def test_unknown_volume_is_not_found(volumes: StorageVolumes) -> None:
    handle = volume("NoSuchVolume")
    assert not handle.exists() and not handle.exists("a.png")
    for call in (
        lambda: handle.list(),
        lambda: handle.stat("a.png"),
        lambda: handle.read_bytes("a.png"),
        lambda: handle.write_bytes("a.png", b"x"),
        lambda: handle.local_path(),
    ):
        with pytest.raises(NotFound, match=r"^volume_display_name: unknown volume 'NoSuchVolume'") as caught:
            call()
        assert caught.value.field == "volume_display_name"
    for bad in ("../x", "", "a/b", ".hidden"):
        with pytest.raises(BadInput, match=r"^volume_display_name: .* is not a valid volume name"):
            volumes.create_volume(bad)
        with pytest.raises(BadInput, match=r"^volume_display_name: "):
            volume(bad)


def test_a_volume_is_path_like_where_it_is_mounted(root: Path, tmp_path: Path) -> None:
    handle = volume(NAME)
    assert os.fspath(handle) == str(root)
    assert handle / "gt" == root / "gt"
    folder = tmp_path / "plain folder"
    (folder / "x").mkdir(parents=True)
    plain = as_volume(folder)
    assert isinstance(plain, Volume) and as_volume(plain) is plain
    assert [f.path for f in plain.list()] == ["x"] and Path(plain) == folder.resolve()
