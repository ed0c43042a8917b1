"""The URL paths every deploy target serves, so that a client calls a deployment or an endpoint the same way
wherever it runs: the local runtime, a Ray cluster, a Kubernetes pod."""

INFERENCE_PREFIX = "/dlim/v1/inference/"
"""A deployment's route (``/dlim/v1/inference/<name>``, WMLA EDI's)."""
ENDPOINT_PREFIX = "/endpoints/"
"""An endpoint's route (``/endpoints/<name>``), in front of its deployments' traffic split."""
