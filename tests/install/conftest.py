"""The sdist and the wheel of this checkout, built once per session (``_distributions.py``)."""

from __future__ import annotations

import pytest

from tests.install._distributions import REPO_ROOT, Distributions, build_from_clean_clone


@pytest.fixture(scope="session")
def distributions(tmp_path_factory: pytest.TempPathFactory) -> Distributions:
    """Built from a clean clone of HEAD: what is tested is what a commit ships."""
    if not (REPO_ROOT / ".git").exists():
        pytest.skip("the distributions are built from a git clone; this is not a git checkout")
    return build_from_clean_clone(tmp_path_factory.mktemp("distributions"))
