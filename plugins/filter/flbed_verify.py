"""Filter plugins that turn flbed_link_probe results into the verification table."""

import os
import sys

_REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _verify():
    try:
        import flbed.verify  # noqa: F401
    except ImportError:
        sys.path.insert(0, _REPO)  # a checkout used without installing the package
    from flbed import verify
    return verify


def flbed_link_verify(probe_results, testbed, tolerance_pct=None):
    """``probe_results | flbed_link_verify(testbed)``: the report of every host's probes."""
    verify = _verify()
    tolerance = verify.DEFAULT_TOLERANCE_PCT if tolerance_pct is None else float(tolerance_pct)
    return verify.report_from_probes(testbed, probe_results, tolerance)


def flbed_link_verify_table(report):
    """The report as text lines, for a debug task."""
    return _verify().render_table(report).splitlines()


class FilterModule:
    def filters(self):
        return {"flbed_link_verify": flbed_link_verify,
                "flbed_link_verify_table": flbed_link_verify_table}
