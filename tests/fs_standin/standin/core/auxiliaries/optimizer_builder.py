"""Stand-in of the real framework's optimizer_builder, from the stand-in's workload.py."""
from ...workload import get_optimizer  # noqa: F401
