"""The client class at the import path the real framework gives it."""

from ...client import Client

__all__ = ["Client"]
