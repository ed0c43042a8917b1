"""The image of one deployment: its folder (code and model) as content, this project's runtime, and a Dockerfile.

The build context is ``image/``: ``deployment/`` (the folder the local runtime would serve), ``runtime/`` (this
project's ``pipeline_utils`` package as a reproducible tarball, and its requirements) and the ``Dockerfile``, whose
entrypoint is :data:`pipeline_utils.deploy.image.ENTRYPOINT_MODULE` (the local runtime in container mode).
Everything is written byte for byte the same for the same inputs (sorted tar members, zero times), so a
re-export diffs cleanly and the image tag (a content digest) only changes with the content.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.metadata
import io
import shutil
import sys
import tarfile
from pathlib import Path

import pipeline_utils
from pipeline_utils.deploy.image import APP_FOLDER, CONTAINER_PORT, ENTRYPOINT_MODULE, IMAGE_USER, RUNTIME_HOME
from pipeline_utils.errors import Unavailable
from pipeline_utils.fsutil import atomic_write_text

DISTRIBUTION = "mlops-notebook-pipeline"
RUNTIME_ROOT = "/opt/mlops"
VENDORED_SCHEMAS = ("backends", "k8s", "schemas")
"""Left out of the image: the KServe schema the tests validate exports with."""
DEPENDENCY_REQUIREMENTS = "requirements.txt"


def runtime_requirements() -> str:
    """This project's requirements, as its installed distribution declares them (one per line)."""
    try:
        required = importlib.metadata.requires(DISTRIBUTION) or []
    except importlib.metadata.PackageNotFoundError:
        raise Unavailable(f"{DISTRIBUTION} is not installed: its requirements for the image are unknown") from None
    return "".join(f"{line}\n" for line in required)


def runtime_tarball(dest: Path) -> Path:
    """``pipeline_utils`` (sources and data, no caches) as a tar.gz with sorted members and zero times."""
    package = Path(pipeline_utils.__file__).resolve().parent
    files = sorted(
        path for path in package.rglob("*")
        if path.is_file() and "__pycache__" not in path.relative_to(package).parts and path.suffix != ".pyc"
        and path.relative_to(package).parts[:3] != VENDORED_SCHEMAS
    )
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in files:
            data = path.read_bytes()
            info = tarfile.TarInfo(f"pipeline_utils/{path.relative_to(package).as_posix()}")
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
    with dest.open("wb") as handle, gzip.GzipFile(fileobj=handle, mode="wb", mtime=0, filename="") as packed:
        packed.write(raw.getvalue())
    return dest


def dockerfile(name: str, kernel_filename: str, with_requirements: bool) -> str:
    """The Dockerfile: a slim Python of this interpreter's version, the runtime, the folder, an unprivileged user."""
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    extra = (
        f"COPY deployment/{DEPENDENCY_REQUIREMENTS} {RUNTIME_ROOT}/deployment-requirements.txt\n"
        f"RUN pip install --no-cache-dir -r {RUNTIME_ROOT}/deployment-requirements.txt\n"
        if with_requirements else ""
    )
    return (
        f"# The image of deployment {name}: this project's runtime serving one deployment folder.\n"
        f"# Written by `mlops deploy export --target k8s`; build it from this folder:\n"
        f"#   docker build -t <registry>/{name}:<tag from ../chart/values.yaml> .\n"
        f"ARG PYTHON_IMAGE=python:{python}-slim\n"
        "FROM ${PYTHON_IMAGE}\n"
        "ENV PYTHONDONTWRITEBYTECODE=1 \\\n"
        "    PYTHONUNBUFFERED=1 \\\n"
        f"    MLOPS_HOME={RUNTIME_HOME} \\\n"
        "    MLOPS_RUNTIME_CONTAINER=1 \\\n"
        f"    MLOPS_RUNTIME_PORT={CONTAINER_PORT}\n"
        f"COPY runtime/requirements.txt {RUNTIME_ROOT}/requirements.txt\n"
        f"RUN pip install --no-cache-dir -r {RUNTIME_ROOT}/requirements.txt\n"
        f"{extra}"
        f"ADD runtime/pipeline_utils.tar.gz {RUNTIME_ROOT}/\n"
        "RUN python -c \"import sysconfig, pathlib; "
        f"pathlib.Path(sysconfig.get_paths()['purelib'], 'mlops.pth').write_text('{RUNTIME_ROOT}\\\\n')\" \\\n"
        f" && useradd --uid {IMAGE_USER} --no-create-home --shell /usr/sbin/nologin mlops \\\n"
        f" && mkdir -p {RUNTIME_HOME} && chown {IMAGE_USER} {RUNTIME_HOME}\n"
        f"COPY deployment/ {APP_FOLDER}/\n"
        f"USER {IMAGE_USER}\n"
        f"EXPOSE {CONTAINER_PORT}\n"
        f'ENTRYPOINT ["python", "-m", "{ENTRYPOINT_MODULE}"]\n'
        f'CMD ["--folder", "{APP_FOLDER}", "--name", "{name}", "--kernel-filename", "{kernel_filename}"]\n'
    )


def write_image(image: Path, name: str, folder: Path, kernel_filename: str) -> str:
    """Write the build context of deployment ``name`` from its served ``folder``; returns the image tag (digest)."""
    shutil.copytree(folder, image / "deployment")
    runtime = image / "runtime"
    runtime.mkdir()
    atomic_write_text(runtime / "requirements.txt", runtime_requirements())
    runtime_tarball(runtime / "pipeline_utils.tar.gz")
    with_requirements = (folder / DEPENDENCY_REQUIREMENTS).is_file()
    atomic_write_text(image / "Dockerfile", dockerfile(name, kernel_filename, with_requirements))
    return content_digest(image)


def content_digest(folder: Path) -> str:
    """The first 12 hex digits of a sha256 over every file's relative path and bytes, in sorted order."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]
