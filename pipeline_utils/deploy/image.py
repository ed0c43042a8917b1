"""The serving image's contract: where things are inside an exported image and what its entrypoint reads.

Shared by the targets that export images (their charts, Dockerfiles, KServe specs) and the entrypoint that serves
them, the local runtime in container mode (:data:`ENTRYPOINT_MODULE`).
"""

from __future__ import annotations

CONTAINER_PORT = 8080
"""The runtime's inference port in the container (``$MLOPS_RUNTIME_PORT``)."""
APP_FOLDER = "/app/deployment"
"""The deployment folder (dependency files, ``model/``, ``model.json``) baked into the image."""
RUNTIME_HOME = "/var/lib/mlops"
"""``$MLOPS_HOME`` in the container: an emptyDir volume (the root file system is read-only)."""
SERVING_MARKER = "serving"
"""The file the entrypoint writes under ``$MLOPS_HOME`` once the deployment is ready (the startup probe's test)."""
PROFILE_ENV = "MLOPS_DEPLOYMENT_PROFILE"
"""The deployment's in-pod runtime profile (JSON of resource_configs keys), a plain variable set by the chart."""
IMAGE_USER = 10001
"""The unprivileged uid the image runs as."""
ENTRYPOINT_MODULE = "pipeline_utils.backends.local.container"
"""The image's entrypoint (``python -m``): the local runtime serving the one deployment folder of the image."""
