"""A missing tool skips a test on a developer's machine and fails it in CI."""

import os

import pytest


def missing(message: str) -> None:
    """Skip locally, fail when CI=true: in CI every tool the tests need must be installed."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message}; CI must install it", pytrace=False)
    pytest.skip(message)
