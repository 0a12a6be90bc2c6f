# Atlas — see README.md. `make run` and `make test` are the two entry points.
GO       ?= go
PYTHON   ?= python3
BIN      := bin/atlas
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
DATE     := $(shell date -u +%Y-%m-%dT%H:%M:%SZ)
LDFLAGS  := -s -w -X main.version=$(VERSION) -X main.buildDate=$(DATE)
FUZZTIME ?= 30s

.PHONY: all build docker run test test-go test-bench services bench bench-go bench-compare bench-api bench-archive bench-replay bench-deps fuzz sweep vet clean

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/atlas

# The container image (deploy/Dockerfile): the same flags as build, on distroless.
IMAGE ?= atlas:$(VERSION)
docker:
	docker build -f deploy/Dockerfile --build-arg VERSION=$(VERSION) --build-arg BUILD_DATE=$(DATE) -t $(IMAGE) .

# The main job on the embedded defaults: log, processor, projector and API in one
# process, data under ./data, the demo model published on first start.
run: build
	./$(BIN) serve --data-dir ./data --demo-model examples/demo-model.json

vet:
	$(GO) vet ./...

test: vet services test-go test-bench

# Real services for the tests: the Apache Kafka broker (KRaft, from Maven Central) and
# Debian's ClickHouse server on loopback ports. Idempotent and cached; JetStream runs
# in-process.
services:
	deploy/local/kafka.sh start
	deploy/local/clickhouse.sh start

test-go:
	ATLAS_KAFKA_REQUIRED=1 ATLAS_CLICKHOUSE_REQUIRED=1 ATLAS_CLICKHOUSE_ADDR=127.0.0.1:19000 \
		$(GO) test -count=1 -timeout 20m ./...
	# Last and alone: it stops and restarts the local ClickHouse mid-run.
	ATLAS_SCALED_TEST=1 ATLAS_CLICKHOUSE_ADDR=127.0.0.1:19000 \
		$(GO) test -count=1 -timeout 10m -run TestScaledRolesSurviveClickHouseOutage ./cmd/atlas

# The SLSQP baseline has tests of its own (it must solve what it claims to).
test-bench: bench-deps
	$(PYTHON) -m pytest -q -p no:cacheprovider bench

bench-deps:
	@$(PYTHON) -c 'import numpy, scipy' 2>/dev/null || $(PYTHON) -m pip install -q -r bench/requirements.txt

# The engine's regression sweep (bench/sweep, about a minute): some 24,000 generated
# requests solved and compared with the recorded run of the last accepted engine. Fails
# when an optimal result is no longer optimal or a certified bound crosses the other
# run's plan. Run it for every change that may alter engine results (each version bump).
SWEEP_BASELINE ?= bench/sweep/baseline-1.3.6.txt
sweep:
	$(GO) run ./bench/sweep -compare $(SWEEP_BASELINE)

# Figures for the README: Go benchmarks, then the engine against scipy's SLSQP on the
# same generated problems, in one invocation.
bench: bench-go bench-compare bench-api bench-archive bench-replay

bench-go:
	$(GO) test -run '^$$' -bench . -benchtime 2s ./engine/

bench-compare: bench-deps
	$(GO) run ./bench/compare

# atlas replay into the embedded store (JetStream log) and into ClickHouse (Kafka log),
# each next to the raw read rate of the same log, in the same run (services: make services).
bench-replay:
	$(GO) run ./bench/replay -target both -n 50000

# The query API from a second process: POST /optimize with wait, GET /results/{id} at
# 1,000 requests/s.
bench-api: build
	$(GO) run ./bench/apiload -atlas $(BIN)

# Export, import and audit next to the raw log rates of the same run (embedded
# JetStream and the local Kafka broker).
bench-archive:
	$(GO) run ./bench/archive -backend both -n 100000

# The archive decoder (outside input), the engine's decoders and solver, then the query
# API's decoders of untrusted input
# (bodies, queries and cursors, credentials, X-Forwarded-For) and of the operator's
# security settings.
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzReader$$' -fuzztime $(FUZZTIME) ./streams/archive/
	$(GO) test -run '^$$' -fuzz '^FuzzMessage$$' -fuzztime $(FUZZTIME) ./streams/archive/
	$(GO) test -run '^$$' -fuzz '^FuzzRawJSON$$' -fuzztime $(FUZZTIME) ./streams/archive/
	$(GO) test -run '^$$' -fuzz '^FuzzRecorded$$' -fuzztime $(FUZZTIME) ./streams/audit/
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME) ./streams/event/
	$(GO) test -run '^$$' -fuzz '^FuzzFastPaths$$' -fuzztime $(FUZZTIME) ./streams/event/
	$(GO) test -run '^$$' -fuzz '^FuzzAppendData$$' -fuzztime $(FUZZTIME) ./streams/event/
	$(GO) test -run '^$$' -fuzz '^FuzzValidateEvent$$' -fuzztime $(FUZZTIME) ./schemas/
	$(GO) test -run '^$$' -fuzz '^FuzzModelAgainstEngine$$' -fuzztime $(FUZZTIME) ./schemas/
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeModel$$' -fuzztime $(FUZZTIME) ./engine/
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeRequest$$' -fuzztime $(FUZZTIME) ./engine/
	$(GO) test -run '^$$' -fuzz '^FuzzSolve$$' -fuzztime $(FUZZTIME) ./engine/
	$(GO) test -run '^$$' -fuzz '^FuzzSolveGenerated$$' -fuzztime $(FUZZTIME) ./engine/
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME) ./projections/
	$(GO) test -run '^$$' -fuzz '^FuzzCompact$$' -fuzztime $(FUZZTIME) ./projections/
	$(GO) test -run '^$$' -fuzz '^FuzzAppendJSON$$' -fuzztime $(FUZZTIME) ./projections/store/
	for f in FuzzRequestBodies FuzzQueryParameters FuzzAuthenticate FuzzForwardedFor FuzzParseRateSpec FuzzParseAPIKeys; do \
		$(GO) test -run '^$$' -fuzz "^$$f\$$" -fuzztime $(FUZZTIME) ./projections/api/ || exit 1; \
	done

clean:
	rm -rf bin bench/out
