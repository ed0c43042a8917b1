"""Deployment names (seed 001): the one rule the schema, the deploy steps and the runtime check (cheap to import)."""

from __future__ import annotations

import re
from typing import Any

DEPLOYMENT_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
DEPLOYMENT_NAME_RULE = "must be 1-63 lowercase letters, digits and hyphens, starting and ending with a letter or digit"


def is_deployment_name(value: Any) -> bool:
    """Whether ``value`` is a valid deployment name."""
    return isinstance(value, str) and DEPLOYMENT_NAME.match(value) is not None
