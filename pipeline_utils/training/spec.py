"""The training job spec: what to run, how many workers, which environment and data."""

from __future__ import annotations

import re
from collections.abc import Iterable
from enum import Enum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator

from pipeline_utils.errors import BadInput, NotFound, PipelineError
from pipeline_utils.masking import secret_values
from pipeline_utils.volumes import check_volume_name, clean_path, get_volumes

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
RESERVED_ENV = frozenset(
    {
        "DATA_DIR",
        "OUTPUT_DIR",
        "RANK",
        "WORLD_SIZE",
        "LOCAL_RANK",
        "LOCAL_WORLD_SIZE",
        "NODE_RANK",
        "MASTER_ADDR",
        "MASTER_PORT",
        "JOB_ID",
    }
)


class Framework(str, Enum):
    """How the job runs: one worker (``PyTorch``) or several torch.distributed workers (``distPyTorch``)."""

    PYTORCH = "PyTorch"
    DIST_PYTORCH = "distPyTorch"

    def __str__(self) -> str:
        return self.value


class JobSpec(BaseModel):
    """A training job: a scripts folder, its main file, workers, resources, environment and data."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    scripts_dir: Path
    main_file: str
    framework: Framework = Framework.PYTORCH
    workers: int = Field(default=1, ge=1)
    devices_per_worker: int = Field(default=0, ge=0)
    memory_mb: int | None = Field(default=None, ge=1)
    env: dict[str, SecretStr] = Field(default_factory=dict)
    data_volume: str | None = None
    data_path: str = ""
    args: list[str] = Field(default_factory=list)
    name: str | None = None

    @field_validator("scripts_dir")
    @classmethod
    def _scripts_dir_exists(cls, value: Path) -> Path:
        path = Path(value).expanduser().resolve()
        if not path.is_dir():
            raise ValueError(f"folder {str(value)!r} does not exist")
        return path

    @field_validator("env")
    @classmethod
    def _env_valid(cls, value: dict[str, SecretStr]) -> dict[str, SecretStr]:
        """Names a process can have; values long enough to be masked in the job's log (they are secrets)."""
        for name in value:
            if not _ENV_NAME.match(name):
                raise ValueError(f"{name!r} is not a valid environment variable name")
            if name in RESERVED_ENV:
                raise ValueError(f"{name} is set by the training runner and cannot be given")
        try:
            secret_values({name: secret.get_secret_value() for name, secret in value.items()})
        except BadInput as exc:
            raise ValueError(str(exc)) from None
        return value

    @model_validator(mode="after")
    def _check_job(self) -> JobSpec:
        main = (self.scripts_dir / self.main_file).resolve()
        if self.scripts_dir not in main.parents or not main.is_file():
            raise _FieldError("main_file", f"{self.main_file!r} does not exist in {self.scripts_dir}")
        if self.framework is Framework.PYTORCH and self.workers != 1:
            raise _FieldError("workers", f"framework PyTorch runs 1 worker (got {self.workers}); use distPyTorch")
        if self.data_volume is not None:
            try:
                self.check_data()
            except PipelineError as exc:
                raise ValueError(str(exc)) from None
        elif self.data_path:
            raise _FieldError("data_volume", "a data_path needs the storage volume it is on")
        return self

    def check_data(self) -> None:
        """Check the data location through the storage-volumes interface: the volume and the path on it exist."""
        if self.data_volume is None:
            return
        volumes = get_volumes()
        if not volumes.exists(check_volume_name(self.data_volume, "data_volume")):
            raise NotFound(f"unknown volume {self.data_volume!r}", field="data_volume")
        try:
            found = volumes.exists(self.data_volume, clean_path(self.data_path, "data_path"))
        except BadInput as exc:
            raise BadInput(str(exc).removeprefix(f"{exc.field}: "), field="data_path") from None
        if not found:
            raise NotFound(f"{self.data_path!r} does not exist on volume {self.data_volume!r}", field="data_path")

    def env_values(self) -> dict[str, str]:
        """The environment variables with their (possibly secret) values, for the job's processes only."""
        return {name: secret.get_secret_value() for name, secret in self.env.items()}

    def public_dict(self) -> dict[str, Any]:
        """The spec without environment values (names only): safe to store and show."""
        data = self.model_dump(mode="json", exclude={"env"})
        data["env_names"] = sorted(self.env)
        return data


class _FieldError(ValueError):
    """A validation failure attributed to one field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")


def build_job_spec(**fields: Any) -> JobSpec:
    """Validate ``fields`` into a JobSpec; bad input is a PipelineError naming the field."""
    try:
        return JobSpec(**fields)
    except ValidationError as exc:
        raise PipelineError(_describe(exc)) from None


def parse_env_pairs(pairs: Iterable[str]) -> dict[str, str]:
    """Turn ``--msd-env K=V`` values into a dict; a pair without ``=`` is a PipelineError."""
    env: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise PipelineError("msd-env: expected K=V (an entry has no name or no '=')")
        env[name.strip()] = value
    return env


def _describe(exc: ValidationError) -> str:
    error = exc.errors(include_url=False)[0]
    message = str(error["msg"]).removeprefix("Value error, ")
    if not error["loc"]:
        return message
    field = str(error["loc"][0])
    if error["type"] == "greater_than_equal" and field != "env":
        return f"{field}: must be >= {error['ctx']['ge']} (got {error['input']!r})"
    return f"{field}: {message}"
