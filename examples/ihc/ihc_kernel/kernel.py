"""WMLA EDI kernel of the IHC image example (a small offline stand-in for seed 003's DeepLIIF kernel).

Settings, read from kernel settings or custom args (module-level names) first, then the environment:
- MODEL_DIR: the model folder or file; default: REDHARE_MODEL_PATH (the deployment's folder,
  searched up to 3 levels deep for pixel_classifier.joblib)
- VOLUME_DIR: the storage volume folder; or VOLUME_DISPLAY_NAME: a local storage volume under
  $MLOPS_VOLUMES_DIR or $MLOPS_HOME/volumes
- REDHARE_MODEL_NAME (deployment name) and MSD_POD_NAME (kernel id), set by the runtime
The request/response contract is in README.md.
"""

import os
import sys

import redhareapiversion  # noqa: F401
from redhareapi import Kernel

KERNEL_DIR = os.path.dirname(os.path.abspath(__file__))
if KERNEL_DIR not in sys.path:
    sys.path.insert(0, KERNEL_DIR)

import ihc_service


def setting(name):
    """A custom arg (module-level name) if set, else the environment variable of that name."""
    value = globals().get(name)
    if value is None or str(value).strip() == "":
        value = os.environ.get(name)
    return str(value).strip() if value is not None and str(value).strip() != "" else None


class MatchKernel(Kernel):
    def on_kernel_start(self, kernel_context):
        self.service = ihc_service.IhcService.from_settings(setting)
        print(
            f"[ihc kernel] started: deployment {self.service.deployment}, pod {self.service.pod}, "
            f"model {self.service.model.meta.get('model_path')}, "
            f"volume {self.service.volume_root or self.service.volume_problem}",
            flush=True,
        )

    def on_task_invoke(self, task_context):
        while task_context is not None:
            try:
                output = self.service.handle_json(task_context.get_input_data())
            except Exception as exc:  # handle_json does not raise; this is the last line of defence
                output = ihc_service.error_json(f"internal error: {type(exc).__name__}: {exc}")
            task_context.set_output_data(output)
            next_task = getattr(task_context, "next", None)
            task_context = next_task() if callable(next_task) else None

    def on_kernel_shutdown(self):
        service = getattr(self, "service", None)
        if service is not None:
            service.volume_log("-", "kernel shutting down")
        print("[ihc kernel] shutting down", flush=True)


if __name__ == "__main__":
    obj_kernel = MatchKernel()
    obj_kernel.run()
