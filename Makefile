# netbed — `make help` lists the targets.
# Needs only Docker, Python 3.11 and make: everything else goes into .venv.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
NETBED := $(BIN)/netbed
STAMP := $(VENV)/.installed
# Variables a user types (make impair ARGS='...' INSTANCE=...) never reach a shell as code:
# each one given on the command line or in the environment is taken verbatim ($(value), so
# make does not expand `$(...)` inside it either) and handed to the recipe as an environment
# variable, which the recipe quotes ("$$ARGS"). netbed itself validates them and names what
# was wrong (tests/unit/test_makefile.py).
USER_VARS := NETBED_INSTANCE INSTANCE ARGS DIR MATCH PROFILE PYTEST_ARGS
$(foreach v,$(USER_VARS),$(if $(filter command line environment%,$(origin $(v))),\
  $(eval override $(v) := $$(value $(v)))))
INSTANCE ?= $(or $(NETBED_INSTANCE),netbed)
PYTEST_ARGS ?=
export $(USER_VARS)

.DEFAULT_GOAL := help

.PHONY: help venv up down test test-unit test-netns test-kernel-netem test-kernel-suites browser readme-report status logs ps impair clear scenario profiles \
        shell-client shell-router shell-server clean lint bench

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-18s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "netbed: installing the harness and its dependencies into $(VENV)"
	@$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $@

venv: $(STAMP) ## create .venv with the harness, pytest and Compose v2

up: $(STAMP) ## build and start the testbed (client, router, server)
	@$(NETBED) --instance "$$INSTANCE" up

down: $(STAMP) ## stop the testbed and remove everything it created
	@$(NETBED) --instance "$$INSTANCE" down

test: $(STAMP) ## run unit and integration tests (starts the testbed if it is not up)
	@set -f; NETBED_INSTANCE="$$INSTANCE" $(BIN)/pytest --netbed-instance "$$INSTANCE" $$PYTEST_ARGS

test-unit: $(STAMP) ## unit tests only (no Docker)
	@set -f; $(BIN)/pytest tests/unit $$PYTEST_ARGS

test-netns: $(STAMP) ## integration tests on network-namespace hosts, no Docker (needs root)
	@set -f; $(BIN)/pytest tests/integration --netbed-hosts netns $$PYTEST_ARGS

status: $(STAMP) ## hosts, addresses, agents, router counters
	@$(NETBED) --instance "$$INSTANCE" status

ps: $(STAMP) ## the testbed's containers
	@docker ps -a --filter "label=io.netbed.instance=$$INSTANCE" --format 'table {{.Names}}\t{{.Status}}\t{{.Ports}}'

logs: ## the agents' logs
	@for c in $$(docker ps -a -q --filter "label=io.netbed.instance=$$INSTANCE"); do \
	  echo "== $$(docker inspect -f '{{.Name}}' $$c)"; docker logs --tail 50 $$c; done

shell-client: $(STAMP) ## a shell on the client (needs a terminal; otherwise: netbed run client -- CMD)
	@$(NETBED) --instance "$$INSTANCE" shell client

shell-router: $(STAMP) ## a shell on the router (needs a terminal; otherwise: netbed run router -- CMD)
	@$(NETBED) --instance "$$INSTANCE" shell router

shell-server: $(STAMP) ## a shell on the server (needs a terminal; otherwise: netbed run server -- CMD)
	@$(NETBED) --instance "$$INSTANCE" shell server

impair: $(STAMP) ## impair the router: make impair ARGS='delay 40ms loss 10%' [DIR=to-server] [MATCH=udp:53]
	@test -n "$$ARGS$$PROFILE" || { echo "usage: make impair ARGS='delay 40ms loss 10%' [DIR=to-server] [MATCH=udp:5000] | PROFILE=wan"; exit 2; }
	@$(NETBED) --instance "$$INSTANCE" impair --direction "$${DIR:-both}" $${MATCH:+--match "$$MATCH"} $${PROFILE:+--profile "$$PROFILE"} -- "$$ARGS"

clear: $(STAMP) ## remove every impairment: pristine forwarding [DIR=to-server]
	@$(NETBED) --instance "$$INSTANCE" clear --direction "$${DIR:-both}"

scenario: $(STAMP) ## run conditions over time on the router: make scenario FILE=my.yaml | FILE=flaky-wifi [FOLLOW=1]
	@test -n "$$FILE" || { echo "usage: make scenario FILE=path.yaml|NAME [FOLLOW=1]   (names: netbed scenario --list)"; exit 2; }
	@$(NETBED) --instance "$$INSTANCE" scenario $${FOLLOW:+--follow} "$$FILE"

profiles: $(STAMP) ## list the named impairment profiles
	@$(NETBED) profiles

clean: $(STAMP) ## remove every container, network, volume labelled as netbed, and the images netbed built
	@$(NETBED) clean --images

test-kernel-netem: ## the kernel netem backend and SCTP checks, in a VM with Debian's kernel (about 1 min)
	@bash vm/run.sh

browser: ## install headless Chromium for the report's browser test (Debian's package; run as root)
	@command -v chromium >/dev/null 2>&1 && echo "chromium is installed: $$(chromium --version 2>/dev/null)" || { \
	  test "$$(id -u)" = 0 || { echo "make browser: run as root (it uses apt-get install chromium)"; exit 1; }; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium; }

test-kernel-suites: $(STAMP) ## the integration suites on the kernel netem backend with SCTP, in that VM (about 10 min)
	@set -f; NETBED_VM_TEST=suites bash vm/run.sh $$PYTEST_ARGS

readme-report: $(STAMP) ## copy the last run's conformance table (reports/conformance.md) into README.md
	@$(BIN)/python -m netbed.report

lint: $(STAMP) ## ruff and mypy
	@$(BIN)/ruff check harness services tests bench examples
	@$(BIN)/mypy
	@MYPYPATH=harness:services/agent:services/router $(BIN)/mypy --strict services/agent/netbed_agent services/router/netbed_router

bench: $(STAMP) ## measure cold/warm up, down and test wall times (bench/lifecycle.py)
	@$(BIN)/python bench/lifecycle.py
