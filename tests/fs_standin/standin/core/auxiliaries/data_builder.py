"""Stand-in of the real framework's data_builder, from the stand-in's workload.py."""
from ...workload import get_data  # noqa: F401
