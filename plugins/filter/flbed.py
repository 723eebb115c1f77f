"""Filter plugins that let playbooks reach flbed's controller-side code."""

import importlib
import os
import sys

_REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _flbed(module):
    """A module of the flbed package, from the checkout when the package is not installed."""
    try:
        import flbed  # noqa: F401
    except ImportError:
        sys.path.insert(0, _REPO)
    return importlib.import_module(f"flbed.{module}")


def flbed_summary(plan, outcomes, host_failures=None, shaping=None):
    """summary.json of a run: ``plan | flbed_summary(outcomes, host_failures, shaping)``."""
    outcomes = [o for o in outcomes if isinstance(o, dict)]
    shaping = [entry for records in shaping or [] for entry in records or []]
    return _flbed("results").build_summary(plan, outcomes, host_failures or [], shaping)


def flbed_calibration_record(measured, host, plan, image):
    """What ``flbed calibrate`` keeps of one host's measurement:
    ``result | flbed_calibration_record(host, plan, image)``."""
    calibration = _flbed("calibration")
    return calibration.make_record(host, plan["workload"]["key"], plan["workload"]["fs_config"],
                                   image, measured)


class FilterModule:
    def filters(self):
        return {"flbed_summary": flbed_summary,
                "flbed_calibration_record": flbed_calibration_record}
