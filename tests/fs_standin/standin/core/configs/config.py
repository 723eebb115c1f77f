"""Stand-in of the real framework's global config (see the stand-in's workload.py)."""
from ...workload import global_cfg  # noqa: F401
