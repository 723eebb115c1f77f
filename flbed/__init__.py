"""flbed: emulate federated-learning edge fleets in Docker, driven by Ansible."""

import logging

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())
