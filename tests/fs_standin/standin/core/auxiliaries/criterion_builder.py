"""Stand-in of the real framework's criterion_builder, from the stand-in's workload.py."""
from ...workload import get_criterion  # noqa: F401
