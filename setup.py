"""Packaging beyond what pyproject.toml can say: the top-level notebooks/ ship as ``pipeline_utils._notebooks``."""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["pipeline_utils", "pipeline_utils.*"]), "pipeline_utils._notebooks"],
    package_dir={"pipeline_utils._notebooks": "notebooks"},
)
