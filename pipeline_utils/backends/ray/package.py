"""Zip packages for Ray's ``runtime_env``: a deployment folder (``working_dir``) and the project's code
(``py_modules``), named by their content's hash as Ray names uploaded packages (``gcs://_ray_pkg_<hash>.zip``).

The zips are deterministic (sorted members, fixed timestamps), so the same folder gives the same package and an
unchanged package is not uploaded twice.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

import pipeline_utils

FIXED_TIME = (1980, 1, 1, 0, 0, 0)
SKIPPED_PARTS = frozenset({"__pycache__", ".git", ".ipynb_checkpoints"})


def _files(root: Path, suffixes: tuple[str, ...] | None = None) -> list[Path]:
    return sorted(
        path for path in root.rglob("*")
        if path.is_file()
        and not SKIPPED_PARTS.intersection(path.relative_to(root).parts)
        and (suffixes is None or path.suffix in suffixes)
    )


def zip_tree(root: Path, prefix: str = "", suffixes: tuple[str, ...] | None = None) -> bytes:
    """The files under ``root`` (those ending in ``suffixes`` when given) zipped under ``prefix``, deterministically."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in _files(root, suffixes):
            info = zipfile.ZipInfo(f"{prefix}{path.relative_to(root).as_posix()}", date_time=FIXED_TIME)
            info.external_attr = (0o644 if not path.stat().st_mode & 0o111 else 0o755) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, path.read_bytes())
    return buffer.getvalue()


def package_name(data: bytes) -> str:
    """The package's name in the cluster: ``_ray_pkg_<sha256 prefix>.zip`` of its bytes."""
    return f"_ray_pkg_{hashlib.sha256(data).hexdigest()[:32]}.zip"


def folder_package(folder: str | Path) -> bytes:
    """A deployment folder (model and code) as the zip of its ``working_dir``: the folder's content at the root."""
    return zip_tree(Path(folder))


def project_package() -> bytes:
    """The project's Python code (the ``pipeline_utils`` package) as a ``py_modules`` zip, so that replicas run
    the local runtime's flavour code on a cluster where the project is not installed."""
    root = Path(pipeline_utils.__file__).resolve().parent
    return zip_tree(root, prefix="pipeline_utils/", suffixes=(".py", ".typed"))
