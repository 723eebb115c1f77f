"""Filter plugins that let playbooks reach flbed's controller-side code."""

import os
import sys

_REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _results():
    try:
        import flbed.results  # noqa: F401
    except ImportError:
        sys.path.insert(0, _REPO)  # a checkout used without installing the package
    from flbed import results
    return results


def flbed_summary(plan, outcomes, host_failures=None, shaping=None):
    """summary.json of a run: ``plan | flbed_summary(outcomes, host_failures, shaping)``."""
    outcomes = [o for o in outcomes if isinstance(o, dict)]
    shaping = [entry for records in shaping or [] for entry in records or []]
    return _results().build_summary(plan, outcomes, host_failures or [], shaping)


class FilterModule:
    def filters(self):
        return {"flbed_summary": flbed_summary}
