"""Fixtures for channel tests: the fake Cloud API."""

from tests.support.fakes.graph_api import graph_api

__all__ = ["graph_api"]
