"""Lookup plugin: the flbed plan of a testbed file, computed on the controller.

This is how ``ansible-playbook`` reaches the same planner as the ``flbed`` command: it calls
``flbed.plan.make_plan`` with the playbook's own inventory and facts.
"""

DOCUMENTATION = r"""
name: flbed_plan
short_description: Plan a flbed testbed against the current inventory
description:
  - Reads a testbed file, checks it, and returns the plan that flbed's roles carry out
    (participants, hosts, containers, limits, links and FederatedScope configs).
  - Hosts, groups and gathered facts (core counts) come from the running playbook.
options:
  _terms:
    description: Path of the testbed file.
    required: true
  run_id:
    description: Identifier of the run directory; a new UTC timestamp when empty.
    type: str
    default: ""
  runs_root:
    description: Directory under which C(<testbed>/<run_id>) is created.
    type: str
    default: runs
  workdir_root:
    description: Directory on each Docker host under which C(<testbed>/) is kept.
    type: str
    default: /var/lib/flbed
  calibrating:
    description: Plan for C(flbed calibrate); a throughput profile on a host without a
      calibration yet is then no error.
    type: bool
    default: false
"""

import os
import sys

from ansible.errors import AnsibleError
from ansible.plugins.lookup import LookupBase

_REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _import_flbed():
    try:
        import flbed.plan  # noqa: F401
    except ImportError:
        sys.path.insert(0, _REPO)  # a checkout used without installing the package
    from flbed import inventory, plan, schema
    from flbed.errors import InputError
    return inventory, plan, schema, InputError


# Only these host variables matter to the planner; reading no others keeps templating cheap.
_SIZING_KEYS = ("flbed_host_cpus", "flbed_native_compute", "ansible_processor_nproc",
                "ansible_processor_vcpus", "ansible_memtotal_mb", "ansible_connection")


def _sizing_vars(hostvars, host):
    try:
        values = hostvars[host]
    except KeyError:
        return {}
    return {key: values[key] for key in _SIZING_KEYS if key in values}


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        self.set_options(var_options=variables, direct=kwargs)
        inventory_lib, plan_lib, schema, InputError = _import_flbed()
        variables = variables or {}
        groups = {name: list(hosts) for name, hosts in variables.get("groups", {}).items()}
        hostvars = variables.get("hostvars", {})
        hosts = {name: _sizing_vars(hostvars, name) for name in groups.get("all", [])}
        inventory = inventory_lib.Inventory(hosts, groups)
        try:
            testbed = schema.load_testbed(terms[0])
            plan = plan_lib.make_plan(testbed, inventory, run_id=self.get_option("run_id"),
                                      runs_root=self.get_option("runs_root"),
                                      workdir_root=self.get_option("workdir_root"),
                                      calibrating=self.get_option("calibrating"))
        except InputError as error:
            raise AnsibleError("testbed refused:\n" + "\n".join(error.problems)) from None
        return [plan]
