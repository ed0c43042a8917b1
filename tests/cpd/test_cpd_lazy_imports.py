"""The IBM SDKs are an extra: neither the local default nor importing the cpd backend's modules loads them."""

from __future__ import annotations

import subprocess
import sys

SDKS = ("ibm_watsonx_ai", "ibm_watson_openscale", "ibm_cloud_sdk_core")
CPD_MODULES = (
    "settings", "auth", "http", "concern", "wml", "space", "revisions", "edi", "deploy", "openscale", "monitor",
    "provider", "spacemodel", "training", "volumes",
)


def test_cpd_modules_and_the_cli_do_not_import_the_ibm_sdks() -> None:
    imports = "; ".join(f"import pipeline_utils.backends.cpd.{name}" for name in CPD_MODULES)
    code = (
        f"import sys; {imports}; import pipeline_utils.cli.doctor_cmd, pipeline_utils.backends.local.space; "
        f"loaded = sorted(m for m in sys.modules if m.split('.')[0] in {SDKS!r}); print(loaded)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
