#!/usr/bin/env python
"""The MLOps pipeline CLI: ``python run_pipeline.py --help``."""

import sys

from pipeline_utils.cli import main

if __name__ == "__main__":
    sys.exit(main())
