"""The ``k8s`` deploy target: Helm charts, container images and KServe InferenceServices written by ``deploy export``.

Nothing here needs a Kubernetes client: the export is files (see README.md in this folder). Validating them
(kubernetes-validate, jsonschema) is the ``requirements-k8s.txt`` extra, used by the tests.
"""
