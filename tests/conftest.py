"""Shared fixtures: where the repository is, and helpers every test level uses."""

import pathlib

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture
def repo():
    return REPO
