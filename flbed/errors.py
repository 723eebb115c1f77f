"""The small exception hierarchy of flbed.

User mistakes are ``InputError`` (exit code 2, one line per problem, no traceback); a run or
host that failed is ``RunError`` (exit code 1).
"""


class FlbedError(Exception):
    """Base of every error flbed raises on purpose."""


class InputError(FlbedError):
    """The testbed file, inventory or command line is wrong; nothing was started."""

    def __init__(self, problems):
        if isinstance(problems, str):
            problems = [problems]
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


class RunError(FlbedError):
    """Ansible, a host or a participant failed while the testbed was being made or run."""
