"""Stand-in of the real framework's model_builder, from the stand-in's workload.py."""
from ...workload import get_model  # noqa: F401
