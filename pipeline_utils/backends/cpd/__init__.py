"""The ``cpd`` backend: IBM Cloud Pak for Data through its SDKs and REST APIs, one module per concern.

Configured from the environment once (:mod:`.settings`); every call authenticates with a CPD token that is
refreshed before it expires (:mod:`.auth`) and goes through one HTTP layer that turns failures into the typed
errors of :mod:`pipeline_utils.errors`, naming the service and the URL (:mod:`.http`). The IBM SDKs
(``ibm-watsonx-ai``, ``ibm-watson-openscale``, from ``requirements-cpd.txt``) are imported only inside the
concerns that need them, so the local default never pays for them.
"""
