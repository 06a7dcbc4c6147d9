# sanless.xen - the README names these targets; users and scripts rely on them.
SHELL := /bin/bash
.DEFAULT_GOAL := help
N ?= 2
PY_NEWEST := $(shell bash scripts/find-python.sh 12 2>/dev/null)
PY_OLDEST := $(shell bash scripts/find-python.sh 11 11 2>/dev/null)
VENV_NEWEST := .venv-newest
VENV_OLDEST := .venv-oldest
LAB := $(VENV_NEWEST)/bin/python lab/labctl.py
PYTEST_UNIT := -p no:cacheprovider tests/unit

.PHONY: help test test-faults unit unit-deps unit-newest unit-oldest sanity lint ee e2e demo lab-up lab-down lab-status image link venvs host-deps

help:
	@echo "make demo        boot the lab, provision web01 and live-migrate it"
	@echo "make test        every test: unit (2 ansible-core versions), sanity, lint, EE definition, lab e2e"
	@echo "make lab-up [N=3] / make lab-down / make lab-status"

# The repo root is the collection; ansible.cfg and pytest find it through this link.
link:
	@mkdir -p .collections/ansible_collections/sanless
	@ln -sfn ../../.. .collections/ansible_collections/sanless/xen

$(VENV_NEWEST)/.requirements.sha256: requirements/controller-newest.txt scripts/venv.sh
	@test -n "$(PY_NEWEST)" || { echo "need python >= 3.12 (pyenv install 3.13)"; exit 1; }
	bash scripts/venv.sh $(VENV_NEWEST) $(PY_NEWEST) requirements/controller-newest.txt

$(VENV_OLDEST)/.requirements.sha256: requirements/controller-oldest.txt scripts/venv.sh
	@test -n "$(PY_OLDEST)" || { echo "need python 3.11"; exit 1; }
	bash scripts/venv.sh $(VENV_OLDEST) $(PY_OLDEST) requirements/controller-oldest.txt

venvs: $(VENV_NEWEST)/.requirements.sha256 $(VENV_OLDEST)/.requirements.sha256

# Debian's chromium and chromium-driver for the HTML report's browser tests, when missing (as root)
unit-deps:
	bash scripts/unit-deps.sh

unit-newest: link unit-deps $(VENV_NEWEST)/.requirements.sha256
	$(VENV_NEWEST)/bin/python -m pytest $(PYTEST_UNIT)

unit-oldest: link unit-deps $(VENV_OLDEST)/.requirements.sha256
	$(VENV_OLDEST)/bin/python -m pytest $(PYTEST_UNIT) -m "not once"

unit: unit-newest unit-oldest

sanity: $(VENV_NEWEST)/.requirements.sha256
	bash scripts/sanity.sh $(VENV_NEWEST)

# ansible-lint on the whole repository (.ansible-lint: what it leaves out, the awx.awx modules it mocks)
lint: link $(VENV_NEWEST)/.requirements.sha256
	PATH=$(CURDIR)/$(VENV_NEWEST)/bin:$$PATH ansible-lint --profile production
	@echo "lint: ansible-lint production profile passed on the whole collection"

# ansible-builder (from PyPI, in a throwaway venv) checks execution-environment.yml; builds no image
ee: link $(VENV_NEWEST)/.requirements.sha256
	bash tests/ee/check.sh $(VENV_NEWEST)/bin/python

host-deps:
	bash lab/host-deps.sh

e2e: link host-deps $(VENV_NEWEST)/.requirements.sha256
	$(VENV_NEWEST)/bin/python -m pytest -p no:cacheprovider --durations=30 -m "lab and not faults and not long" tests/e2e

# The long fault matrix (kill points x resume/abort, link cut, power-off): run before resolving
# an engine issue; make test runs an abort and a kill-and-resume (the kill during xl migrate) of it.
test-faults: link host-deps $(VENV_NEWEST)/.requirements.sha256
	$(VENV_NEWEST)/bin/python -m pytest -p no:cacheprovider --durations=30 -m "faults or long" tests/e2e

# The lab e2e in the foreground, the lab-free checks beside it at the lowest CPU priority (a session of their own,
# its autogroup niced too), CHECK_JOBS at a time (scripts/test.sh). Each stage prints its time: the whole stays under an hour.
CHECK_JOBS ?= 2
test: link unit-deps host-deps venvs
	@bash scripts/test.sh $(CHECK_JOBS)

image: host-deps $(VENV_NEWEST)/.requirements.sha256
	$(LAB) image

lab-up: link host-deps $(VENV_NEWEST)/.requirements.sha256
	$(LAB) up --hosts $(N)

lab-down: $(VENV_NEWEST)/.requirements.sha256
	$(LAB) down

lab-status: $(VENV_NEWEST)/.requirements.sha256
	$(LAB) status

demo: link host-deps $(VENV_NEWEST)/.requirements.sha256
	bash scripts/demo.sh
