"""The local runtime's handlers of each kernel flavour; which flavour a folder is lives in ``deploy.flavours``."""

from pipeline_utils.deploy.flavours import ESTIMATOR_CONFIGS, FLAVOURS, MODEL_FOLDER, MODEL_SUFFIXES, detect

__all__ = ["ESTIMATOR_CONFIGS", "FLAVOURS", "MODEL_FOLDER", "MODEL_SUFFIXES", "detect"]
