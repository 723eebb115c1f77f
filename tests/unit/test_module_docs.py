"""Every custom module's documentation renders with ansible-doc, as a user reads it."""

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO

MODULES = sorted(path.stem for path in (REPO / "plugins" / "modules").glob("flbed_*.py"))
ANSIBLE_DOC = os.path.join(os.path.dirname(sys.executable), "ansible-doc")


@pytest.mark.parametrize("module", MODULES)
def test_ansible_doc_renders_the_module(module):
    done = subprocess.run([ANSIBLE_DOC, "--json", "-M", str(REPO / "plugins" / "modules"),
                           module], cwd=REPO, capture_output=True, text=True,
                          env=dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg")))
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)[module]
    assert doc["doc"]["short_description"] and doc["doc"]["options"]
    assert doc["examples"] and doc["return"]
