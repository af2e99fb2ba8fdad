# The front door: build, run the local stack, test. `make help` lists it all.
# Variables come from the command line or the environment:
#   make up OMS_PG_PORT=25432        make up BUILD_DIR=build-asan
# The work is in scripts/: deps.sh, stack.sh, test.sh, demo.sh.

SHELL := /bin/bash
.DEFAULT_GOAL := help
# Targets run one after another (deps before build before up); the compile
# itself runs in parallel under cmake --build.
.NOTPARALLEL:

# Variables set on the command line or in the environment reach the scripts
# as environment variables; the scripts hold the defaults:
#   BUILD_DIR=build            the build whose services `up` runs
#   OMS_NATS_PORT=14222        OMS_NATS_MONITOR_PORT=18222
#   OMS_PG_PORT=15432          OMS_REDIS_PORT=16379
#   OMS_HTTP_PORT_BASE=18081   ingest, inventory, payment, notify, refund, analytics
#   CTEST_ARGS=                extra ctest options for `make test`, e.g. -L unit
#   OMS_KEEP_STACK=1           `make test` leaves the servers it started running
#   CLUSTER=3                  `make up`: a 3-node JetStream cluster, 2 processes a service
BUILD_DIR ?= build
JOBS      ?= $(shell nproc)
LOG       ?=

RELEASE_DIR := build
ASAN_DIR    := build-asan
FUZZ_DIR    := build-fuzz
# `make fuzz`: seconds per target; FUZZ_TARGET=fuzz_proto runs one (docs/fuzzing.md).
FUZZ_SECONDS ?= 60
FUZZ_TARGET  ?=
# `up` builds the build whose binaries it runs.
RUN_BUILD   := $(if $(filter $(ASAN_DIR) $(CURDIR)/$(ASAN_DIR),$(BUILD_DIR)),build-asan,build)
# cmake's own Makefiles must not inherit our command-line variables or -j.
CMAKE_BUILD := env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL cmake --build

.PHONY: help deps build build-asan up servers services down status logs clean \
        demo test lint format fuzz bench images k8s-secrets

help:
	@echo 'make build       release build (RelWithDebInfo) in $(RELEASE_DIR)/'
	@echo 'make build-asan  ASan+UBSan debug build in $(ASAN_DIR)/'
	@echo 'make deps        install missing Debian packages (root), or print the command'
	@echo 'make up          deps, build, servers and services; returns when all are ready'
	@echo 'make servers     nats-server (JetStream), PostgreSQL, Redis only; writes .oms/env'
	@echo 'make services    (re)start the built services only'
	@echo 'make down        stop services, then servers'
	@echo 'make status      component, pid, port, state'
	@echo 'make logs        follow .oms/log/*.log (LOG=ingest for one)'
	@echo 'make test        ASan build + lint + servers + ctest'
	@echo 'make lint        clang-format check, clang-tidy, cppcheck (docs/testing.md)'
	@echo 'make format      rewrite C layout with clang-format (.clang-format)'
	@echo 'make fuzz        clang build in $(FUZZ_DIR)/, each fuzz target for FUZZ_SECONDS (60)'
	@echo 'make demo        up, then scripts/demo.sh'
	@echo 'make bench       up, then bench/run.sh'
	@echo 'make images      one Docker image per service, named as the overlay says (OMS_K8S_OVERLAY=deploy/overlays/example)'
	@echo 'make k8s-secrets random credentials for Kubernetes in k8s/secrets/ (git-ignored; kept if present)'
	@echo 'make up CLUSTER=3  three clustered nats-servers, two processes of every service'
	@echo 'make clean       down, then remove .oms/, $(RELEASE_DIR)/ and $(ASAN_DIR)/'
	@echo
	@echo 'variables: BUILD_DIR=build (or build-asan)  JOBS=$$(nproc)  LOG=<component>'
	@echo '  OMS_NATS_PORT=14222  OMS_NATS_MONITOR_PORT=18222  OMS_PG_PORT=15432'
	@echo '  OMS_REDIS_PORT=16379  OMS_HTTP_PORT_BASE=18081  CTEST_ARGS=  OMS_KEEP_STACK=1'

deps:
	@bash scripts/deps.sh

build:
	cmake -S . -B $(RELEASE_DIR) -DCMAKE_BUILD_TYPE=RelWithDebInfo
	$(CMAKE_BUILD) $(RELEASE_DIR) -j $(JOBS)

build-asan:
	cmake -S . -B $(ASAN_DIR) -DOMS_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug
	$(CMAKE_BUILD) $(ASAN_DIR) -j $(JOBS)

up: deps $(RUN_BUILD)
	@bash scripts/stack.sh up

servers: deps
	@bash scripts/stack.sh servers

services:
	@bash scripts/stack.sh services

down:
	@bash scripts/stack.sh down

status:
	@bash scripts/stack.sh status

logs:
	@bash scripts/stack.sh logs $(LOG)

clean:
	@bash scripts/stack.sh clean
	rm -rf $(RELEASE_DIR) $(ASAN_DIR)

# Static checks first: a finding fails the run before any server starts.
test: deps build-asan
	@BUILD_DIR=$(ASAN_DIR) JOBS=$(JOBS) bash scripts/lint.sh
	@bash scripts/test.sh

lint: deps build-asan
	@BUILD_DIR=$(ASAN_DIR) JOBS=$(JOBS) bash scripts/lint.sh

format:
	@JOBS=$(JOBS) bash scripts/lint.sh --format

fuzz: deps
	CC=clang cmake -S . -B $(FUZZ_DIR) -DOMS_FUZZ=ON -DCMAKE_BUILD_TYPE=Debug
	$(CMAKE_BUILD) $(FUZZ_DIR) -j $(JOBS) --target oms_fuzzers
	cd $(FUZZ_DIR) && FUZZ_SECONDS=$(FUZZ_SECONDS) ctest --output-on-failure -j1 -L fuzz \
	    $(if $(FUZZ_TARGET),-R '^fuzz/$(FUZZ_TARGET)$$')

demo: up
	@bash scripts/demo.sh

bench: up
	@if [ -f bench/run.sh ]; then . .oms/env && bash bench/run.sh; \
	 else echo 'bench: no bench/run.sh yet, nothing to run'; fi

images:
	@bash scripts/images.sh

k8s-secrets:
	@bash scripts/k8s-secrets.sh
