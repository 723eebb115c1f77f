"""flbed_link's DOCUMENTATION, EXAMPLES and RETURN parse and agree with its argument spec."""

import ast
import os
import sys

import yaml

HERE = os.path.dirname(__file__)
MODULE = os.path.join(HERE, "..", "..", "plugins", "modules", "flbed_link.py")
sys.path.insert(0, os.path.join(HERE, "..", "..", "plugins", "module_utils"))

import flbed_tc  # noqa: E402


def module_parts():
    """The module's doc strings and its argument_spec(), without importing Ansible."""
    tree = ast.parse(open(MODULE).read())
    docs = {node.targets[0].id: node.value.value for node in tree.body
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)}
    function = next(node for node in tree.body
                    if isinstance(node, ast.FunctionDef) and node.name == "argument_spec")
    namespace = {"flbed_tc": flbed_tc}
    exec(compile(ast.Module([function], []), MODULE, "exec"), namespace)
    return docs, namespace["argument_spec"]()


def assert_documented(documented, spec):
    assert set(documented) == set(spec)
    for name, option in documented.items():
        assert option["type"] == spec[name]["type"], name
        assert option.get("default") == spec[name].get("default"), name
        assert option.get("choices") == spec[name].get("choices"), name
        assert option.get("elements") == spec[name].get("elements"), name


def test_documented_options_are_the_argument_spec():
    docs, spec = module_parts()
    documentation = yaml.safe_load(docs["DOCUMENTATION"])
    assert_documented(documentation["options"], spec)
    assert set(documentation["attributes"]) == {"check_mode", "diff_mode", "idempotent"}


def test_batch_entries_take_every_per_target_option():
    docs, spec = module_parts()
    documented = yaml.safe_load(docs["DOCUMENTATION"])["options"]["links"]["suboptions"]
    assert_documented(documented, spec["links"]["options"])
    per_target = {"container", "netns", "interface", "participant"} | set(flbed_tc.LINK_SETTINGS)
    assert set(spec["links"]["options"]) == per_target
    for name in per_target:
        assert spec["links"]["options"][name] == spec[name], name


def test_examples_and_return_parse():
    docs, spec = module_parts()
    for task in yaml.safe_load(docs["EXAMPLES"]):
        assert set(task["flbed_link"]) <= set(spec), task
    assert {"commands", "not_applied", "link", "links"} <= set(yaml.safe_load(docs["RETURN"]))
