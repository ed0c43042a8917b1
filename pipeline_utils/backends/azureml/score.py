"""Azure ML scoring script written by ``mlops deploy export --target azureml``: ``init()`` starts this folder's
deployment (``deployment/``, described by ``mlops_deployment.json``) with the mlops flavour code copied into
``pipeline_utils/`` beside this file; ``run(raw_data)`` answers one request body as the local runtime does."""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from pipeline_utils.backends.azureml.adapter import Scorer, respond  # noqa: E402

scorer = None


def init():
    """Load the model once per worker (Azure ML calls this before the first request)."""
    global scorer
    started = Scorer(HERE)
    started.start()
    scorer = started


def run(raw_data):
    """Answer one request body (text): the deployment's JSON answer, or its error with the runtime's status."""
    return respond(scorer, raw_data)
