# kubehooks.backup — the one entry point.  `make help` lists the targets.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= $(CURDIR)/.venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.kubehooks-installed
# The oldest supported kubernetes client and ansible-core (tests/requirements-floor.txt).
FLOOR_VENV ?= $(CURDIR)/.venv-floor
FLOOR_STAMP := $(FLOOR_VENV)/.kubehooks-installed
FLOOR_TESTS ?= tests/unit tests/integration/test_exec.py tests/integration/test_pod_hooks.py tests/integration/test_impersonation.py tests/integration/test_connection.py tests/integration/test_in_process.py tests/integration/test_role_create.py tests/integration/test_role_restore.py
export PATH := $(VENV)/bin:$(PATH)
# ansible-test and antsibull-docs need .../ansible_collections/kubehooks/backup: a copy outside the checkout.
BUILD_DIR ?= $(or $(TMPDIR),/tmp)/kubehooks-build-$(shell printf %s "$(CURDIR)" | sha256sum | cut -c1-12)
SANITY_PYTHON ?= $(shell $(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])')
GET_PIP_CACHE := $(HOME)/.ansible/test/cache/get_pip_24_2.py
PYTEST_ARGS ?=

.PHONY: help venv floors test lint sanity units integration demo demo-restore bench bench-smoke cluster-up cluster-down cluster-status build clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-15s %s\n", $$1, $$2}'

venv: $(STAMP) ## Create .venv with the runtime requirements and the test tools

$(STAMP): requirements.txt tests/requirements.txt
	@echo "== creating $(VENV) (runtime requirements + test tools)"
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt -r tests/requirements.txt
	@touch $@

$(FLOOR_STAMP): tests/requirements-floor.txt
	@echo "== creating $(FLOOR_VENV) (the oldest supported kubernetes client and ansible-core)"
	$(PYTHON) -m venv $(FLOOR_VENV)
	$(FLOOR_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(FLOOR_VENV)/bin/python -m pip install --quiet -r tests/requirements-floor.txt
	@touch $@

test: venv lint sanity units floors integration bench-smoke ## Every gate: lint, sanity, unit tests, the floors, integration tests, the bench smoke

lint: venv ## ansible-lint (production profile, warnings fatal), antsibull-docs, antsibull-changelog, pyflakes (tests, bench, localcluster)
	@# Playbooks and roles use kubehooks.backup.* (and module_defaults group/kubehooks.backup.k8s): both tools
	@# resolve the collection from the copy laid out as ansible_collections/kubehooks/backup (offline: no install).
	@coll=$$($(PY) tests/utils/collection_tree.py $(BUILD_DIR)/docs) && \
	  ANSIBLE_COLLECTIONS_PATH=$(BUILD_DIR)/docs ansible-lint --offline --strict --profile production && \
	  ANSIBLE_COLLECTIONS_PATH=$(BUILD_DIR)/docs antsibull-docs lint-collection-docs --plugin-docs "$$coll"
	antsibull-changelog lint
	@# plugins/ is checked by ansible-test sanity (make sanity); the Python around it by pyflakes
	$(PY) -m pyflakes tests bench localcluster

sanity: venv ## ansible-test sanity on a copy of the collection
	@if [ ! -f "$(GET_PIP_CACHE)" ]; then mkdir -p "$$(dirname $(GET_PIP_CACHE))" && \
	  cp tests/utils/get_pip_offline.py "$(GET_PIP_CACHE)" && echo "== installed the offline get-pip stand-in at $(GET_PIP_CACHE)"; fi
	@coll=$$($(PY) tests/utils/collection_tree.py $(BUILD_DIR)/sanity) && cd "$$coll" && \
	  ansible-test sanity --color no --python $(SANITY_PYTHON) --requirements

units: venv ## Unit tests (pure logic, no cluster)
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

floors: venv $(FLOOR_STAMP) ## Unit and exec integration tests with the oldest supported versions (.venv-floor)
	@$(FLOOR_VENV)/bin/python -c 'import sys, ansible, kubernetes, urllib3; \
	  print("== floors: Python %d.%d, ansible-core %s, kubernetes %s, urllib3 %s" % (sys.version_info[:2] + \
	        (ansible.__version__, kubernetes.__version__, urllib3.__version__)))'
	$(PY) -m localcluster up >/dev/null
	PATH="$(FLOOR_VENV)/bin:$$PATH" $(FLOOR_VENV)/bin/python -m pytest $(FLOOR_TESTS) $(PYTEST_ARGS)

integration: venv ## Integration tests on the local cluster (started when it is not running)
	@# Start (or reuse) the cluster here, where its progress shows; the first start builds it (~10 min).
	$(PY) -m localcluster up >/dev/null
	$(PY) -m pytest tests/integration $(PYTEST_ARGS)

demo: DEMO_LOCK := /tmp/kubehooks-nginx-example.lock
demo: venv ## The Velero nginx fsfreeze walkthrough on the local cluster (builds it the first time)
	@echo "== local cluster: python3 -m localcluster up (the first run builds it; progress below)"
	@up=$$($(PY) -m localcluster up) && eval "$$up" && \
	  demo_vars=$$($(PY) -m localcluster info | $(PY) -c 'import json, sys; i = json.load(sys.stdin); \
	    print(json.dumps({"kubectl": i["kubectl"], "nginx_image": i["node_image"], "fsfreeze_image": i["node_image"], \
	                      "report_path": sys.argv[1]}))' "$(BUILD_DIR)/demo-report.txt") && \
	  $(PY) tests/utils/collection_tree.py $(BUILD_DIR)/demo >/dev/null && rm -f "$(BUILD_DIR)/demo-report.txt" && \
	  exec 9>"$(DEMO_LOCK)" && { flock -n 9 || { echo "== waiting: another run is using namespace nginx-example"; flock 9; }; } && \
	  echo "== ansible-playbook kubehooks.backup.nginx_fsfreeze (KUBECONFIG=$$KUBECONFIG)" && \
	  ANSIBLE_COLLECTIONS_PATH="$(BUILD_DIR)/demo" ANSIBLE_LOCALHOST_WARNING=false ANSIBLE_INVENTORY_UNPARSED_WARNING=false \
	    ansible-playbook kubehooks.backup.nginx_fsfreeze -e "$$demo_vars" && \
	  echo && cat "$(BUILD_DIR)/demo-report.txt"

demo-restore: DEMO_LOCK := /tmp/kubehooks-nginx-example.lock
demo-restore: venv ## The walkthrough's round trip: backup (as make demo), delete namespace and data, restore, nginx serves its logs
	@up=$$($(PY) -m localcluster up) && eval "$$up" && \
	  info=$$($(PY) -m localcluster info) && \
	  demo_vars=$$(echo "$$info" | $(PY) -c 'import json, sys; i = json.load(sys.stdin); \
	    print(json.dumps({"kubectl": i["kubectl"], "nginx_image": i["node_image"], "fsfreeze_image": i["node_image"], \
	                      "report_path": sys.argv[1]}))' "$(BUILD_DIR)/demo-report.txt") && \
	  restore_vars=$$(echo "$$info" | $(PY) -c 'import json, sys; i = json.load(sys.stdin); \
	    print(json.dumps({"kubectl": i["kubectl"], "volume_helper_image": i["node_image"], "report_path": sys.argv[1]}))' \
	    "$(BUILD_DIR)/demo-restore-report.txt") && \
	  $(PY) tests/utils/collection_tree.py $(BUILD_DIR)/demo >/dev/null && \
	  rm -f "$(BUILD_DIR)/demo-report.txt" "$(BUILD_DIR)/demo-restore-report.txt" && \
	  exec 9>"$(DEMO_LOCK)" && { flock -n 9 || { echo "== waiting: another run is using namespace nginx-example"; flock 9; }; } && \
	  echo "== ansible-playbook kubehooks.backup.nginx_fsfreeze (KUBECONFIG=$$KUBECONFIG)" && \
	  ANSIBLE_COLLECTIONS_PATH="$(BUILD_DIR)/demo" ANSIBLE_LOCALHOST_WARNING=false ANSIBLE_INVENTORY_UNPARSED_WARNING=false \
	    ansible-playbook kubehooks.backup.nginx_fsfreeze -e "$$demo_vars" && \
	  echo "== ansible-playbook kubehooks.backup.nginx_fsfreeze_restore" && \
	  ANSIBLE_COLLECTIONS_PATH="$(BUILD_DIR)/demo" ANSIBLE_LOCALHOST_WARNING=false ANSIBLE_INVENTORY_UNPARSED_WARNING=false \
	    ansible-playbook kubehooks.backup.nginx_fsfreeze_restore -e "$$restore_vars" && \
	  echo && cat "$(BUILD_DIR)/demo-restore-report.txt"

bench: BENCH_ROUNDS ?= 3
bench: venv ## Benchmarks side by side with the real Velero on the running local cluster (make cluster-up first)
	@# Each prints its ratio to the baseline it measures in the same run, and the machine's load average.
	@# The cluster must be up (make cluster-up): not started here, so that a benchmark never resets a cluster
	@# that other work is using (`localcluster up` rebuilds one whose API server is restarting at that moment).
	$(PY) bench/bench_role.py --rounds $(BENCH_ROUNDS) $(BENCH_ARGS)
	$(PY) bench/bench_freeze.py --rounds $(BENCH_ROUNDS)
	$(PY) bench/bench_hooks.py --rounds $(BENCH_ROUNDS)
	$(PY) bench/bench_restore.py --rounds $(BENCH_ROUNDS)
	$(PY) bench/bench_restore_volumes.py --rounds $(BENCH_ROUNDS)
	$(PY) bench/bench_export_memory.py
	$(PY) bench/bench_capture.py

bench-smoke: venv ## The benchmarks at a smoke size, no Velero, on the running cluster: the scripts still run (make test)
	$(PY) bench/bench_role.py --smoke
	$(PY) bench/bench_freeze.py --smoke
	$(PY) bench/bench_hooks.py --smoke
	$(PY) bench/bench_restore.py --smoke
	$(PY) bench/bench_restore_volumes.py --smoke
	$(PY) bench/bench_export_memory.py --small 20 --large 200
	$(PY) bench/bench_capture.py --small-mib 1 --large-mib 4 --levels 1 --rounds 1

cluster-up: venv ## Build (first time) and start the local cluster; last line: export KUBECONFIG=...
	$(PY) -m localcluster up

cluster-down: ## Stop the local cluster and remove its mounts, loop devices and namespaces (keeps caches)
	$(PYTHON) -m localcluster down

cluster-status: ## Show the local cluster's state
	$(PYTHON) -m localcluster status

build: venv ## Build the collection tarball
	ansible-galaxy collection build --force .

clean: ## Remove build output (keeps .venv, .venv-floor and the cluster caches)
	rm -rf $(BUILD_DIR) tests/output kubehooks-backup-*.tar.gz
