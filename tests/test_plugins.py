"""A package installed beside the project adds a deploy target through an entry point, without editing it.

The plug-in distribution is built and installed with pip into a temporary folder; the real CLI runs in a
subprocess with that folder on its path and picks the plug-in by ``$MLOPS_DEPLOY_TARGET``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import run_cli

pytestmark = pytest.mark.slow

PLUGIN = "jsonfile"
STORE_VARIABLE = "JSONFILE_TARGET_STORE"

PYPROJECT = f"""\
[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "mlops-jsonfile-target"
version = "0.1.0"

[project.entry-points."mlops.deploy_targets"]
{PLUGIN} = "mlops_jsonfile_target:JsonFileTarget"

[tool.setuptools]
py-modules = ["mlops_jsonfile_target"]
"""

MODULE = f'''\
"""A deploy target that keeps its deployments in a JSON file named by ${STORE_VARIABLE}."""

import json
from pathlib import Path

from pipeline_utils.deploy.base import DeploymentTarget
from pipeline_utils.errors import BadInput, NotFound, Unavailable


class JsonFileTarget(DeploymentTarget):
    name = "{PLUGIN}"

    def __init__(self, store):
        self.store = Path(store)

    @classmethod
    def from_environment(cls, environ):
        if not environ.get("{STORE_VARIABLE}"):
            raise BadInput("must name the JSON file of deployments", field="{STORE_VARIABLE}")
        return cls(environ["{STORE_VARIABLE}"])

    def _rows(self):
        return json.loads(self.store.read_text()) if self.store.exists() else {{}}

    def _row(self, name):
        rows = self._rows()
        if name not in rows:
            raise NotFound(f"no deployment named {{name!r}}", field="name")
        return rows[name]

    def _save(self, name, row):
        rows = self._rows()
        rows[name] = row
        self.store.write_text(json.dumps(rows))
        return row

    def package(self, entry, assets, *, kernel_filename="kernel.py"):
        return assets.dependency.path

    def create(self, name, folder, resource_configs=None, custom_args=None, *, kernel_filename="kernel.py"):
        return self._save(name, {{"name": name, "status": "stopped", "folder": str(folder)}})

    def update(self, name, folder, *, kernel_filename="kernel.py", timeout=120.0):
        return self._save(name, {{**self._row(name), "folder": str(folder)}})

    def start(self, name, custom_args=None):
        return self._save(name, {{**self._row(name), "status": "ready"}})

    def stop(self, name):
        return self._save(name, {{**self._row(name), "status": "stopped"}})

    def delete(self, name):
        rows = self._rows()
        rows.pop(name, None)
        self.store.write_text(json.dumps(rows))

    def list(self):
        return [{{**row, "url": self.url(name)}} for name, row in self._rows().items()]

    def get(self, name):
        return self._row(name)

    def get_profile(self, name):
        return {{}}

    def update_profile(self, name, changes):
        return {{}}

    def url(self, name):
        return f"jsonfile://{{name}}"

    def wait_ready(self, name, timeout=60.0):
        return self._row(name)

    def predict(self, name, payload, timeout=300.0):
        raise Unavailable("the jsonfile target does not serve requests")

    def logs(self, name, tail=None):
        return []
'''


def _pip_install(source: Path, target: Path) -> None:
    """``pip install --no-deps --target``; without an index for build isolation, with the venv's setuptools."""
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps",
               "--target", str(target), str(source)]
    env = {**os.environ, "PIP_RETRIES": "0", "PIP_TIMEOUT": "15"}
    isolated = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    if isolated.returncode != 0:
        local = subprocess.run([*command, "--no-build-isolation"], capture_output=True, text=True, timeout=300)
        assert local.returncode == 0, f"{isolated.stderr}\n{local.stderr}"


@pytest.fixture(scope="module")
def plugin_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder the plug-in distribution is installed into (what goes on PYTHONPATH)."""
    source = tmp_path_factory.mktemp("plugin-source")
    (source / "pyproject.toml").write_text(PYPROJECT)
    (source / "mlops_jsonfile_target.py").write_text(MODULE)
    target = tmp_path_factory.mktemp("plugin-installed")
    _pip_install(source, target)
    assert list(target.glob("mlops_jsonfile_target-*.dist-info/entry_points.txt"))
    return target


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """The plug-in's JSON file, holding one deployment."""
    path = tmp_path / "deployments.json"
    path.write_text(json.dumps({"alpha": {"name": "alpha", "status": "ready", "kernels_running": 0}}))
    return path


def cli(plugin_path: Path, store: Path, *args: str, **variables: str) -> subprocess.CompletedProcess:
    return run_cli(*args, env={"PYTHONPATH": str(plugin_path), STORE_VARIABLE: str(store), **variables})


def test_version_shows_the_plugin_for_its_concern_and_local_for_the_others(plugin_path, store):
    result = cli(plugin_path, store, "version", "--json", MLOPS_DEPLOY_TARGET=PLUGIN)
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    assert record["concerns"] == {
        "space": "local",
        "deploy_target": PLUGIN,
        "monitor_service": "local",
        "training_runner": "local",
        "volumes": "local",
    }
    assert record["installed"]["deploy_target"] == sorted([PLUGIN, "azureml", "cpd", "k8s", "local", "ray"])


def test_deploy_list_goes_through_the_plugin(plugin_path, store):
    result = cli(plugin_path, store, "deploy", "list", "--json", MLOPS_DEPLOY_TARGET=PLUGIN)
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [(row["name"], row["status"], row["url"]) for row in rows] == [("alpha", "ready", "jsonfile://alpha")]


def test_a_backend_for_all_mixes_with_the_plugin_for_one_concern(plugin_path, store):
    variables = {"MLOPS_BACKEND": "local", "MLOPS_DEPLOY_TARGET": PLUGIN}
    version = json.loads(cli(plugin_path, store, "version", "--json", **variables).stdout)
    assert version["concerns"]["deploy_target"] == PLUGIN and version["concerns"]["space"] == "local"
    deployments = cli(plugin_path, store, "deploy", "list", "--json", **variables)
    assert [row["name"] for row in json.loads(deployments.stdout)] == ["alpha"]
    assets = cli(plugin_path, store, "space", "list", "--json", **variables)
    assert assets.returncode == 0 and json.loads(assets.stdout) == []


def test_an_unknown_name_is_one_line_naming_the_variable_and_what_is_installed(plugin_path, store):
    result = cli(plugin_path, store, "deploy", "list", MLOPS_DEPLOY_TARGET="nosuch")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: MLOPS_DEPLOY_TARGET: no deploy target named 'nosuch' is installed (installed: "
        f"{', '.join(sorted([PLUGIN, 'azureml', 'cpd', 'k8s', 'local', 'ray']))})"
    ]


def test_the_plugin_reads_its_configuration_from_the_environment(plugin_path, store):
    result = cli(plugin_path, store, "deploy", "list", MLOPS_DEPLOY_TARGET=PLUGIN, **{STORE_VARIABLE: ""})
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"error: {STORE_VARIABLE}: must name the JSON file of deployments"]
