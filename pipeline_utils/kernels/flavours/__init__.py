"""The handlers of each kernel flavour (every host runs them); which flavour a folder is: ``deploy.flavours``."""

from pipeline_utils.deploy.flavours import ESTIMATOR_CONFIGS, FLAVOURS, MODEL_FOLDER, MODEL_SUFFIXES, detect

__all__ = ["ESTIMATOR_CONFIGS", "FLAVOURS", "MODEL_FOLDER", "MODEL_SUFFIXES", "detect"]
