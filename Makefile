# flbed: the two commands a newcomer needs are `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INVENTORY ?= inventories/local
TESTBED ?= testbeds/default.yml
# Debian tools the tests use beside the Docker engine: iperf3 measures shaped links,
# busybox-static makes a tiny container image without a registry, mmdebstrap and the SSH
# client make and reach the emulated lab hosts of the multi-host test.
TEST_PACKAGES := iperf3 busybox-static mmdebstrap openssh-client

.PHONY: demo test setup host test-tools unit integration clean

demo: setup
	$(BIN)/flbed run $(TESTBED) -i $(INVENTORY)

test: setup test-tools
	$(BIN)/python -m pytest -ra tests

unit: $(VENV)/.installed
	$(BIN)/python -m pytest -ra tests/unit

integration: setup test-tools
	$(BIN)/python -m pytest -ra -m integration tests

setup: $(VENV)/.installed host

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

# The Docker engine, installed and started by flbed's own docker_host role.
host: $(VENV)/.installed
	$(BIN)/ansible-playbook -i $(INVENTORY) playbooks/hosts.yml

test-tools:
	@missing=""; for p in $(TEST_PACKAGES); do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; fi

clean:
	rm -rf $(VENV) .cache .pytest_cache
