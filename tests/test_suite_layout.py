"""The suite's own set-up: on pytest-xdist workers every test carries its ``xdist_group`` (tests/conftest.py)."""

import os

import pytest


def test_xdist_worker_groups_are_applied(request):
    if "PYTEST_XDIST_WORKER" not in os.environ:
        pytest.skip("not on a pytest-xdist worker (the README's command runs two)")
    # --dist loadgroup appends "@group" to each node id; pytest >= 9.2 silently drops it (pytest-xdist #1386)
    assert request.node.nodeid.endswith("@test_suite_layout"), request.node.nodeid
