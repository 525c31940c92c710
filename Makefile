# Sluice — the two commands a newcomer needs are `make run` and `make test`.
GO      ?= go
BIN     ?= bin/sluice
FUZZTIME ?= 20s

.PHONY: all build plugins run run-anti-abuse test test-deps bench fuzz vet clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/sluice

# Build every example and first-party plugin to .wasm (standard Go for
# wasip1; the WAT example with wat2wasm).
plugins:
	sh scripts/build-plugins.sh

# Start the server on the embedded default configuration (SMTP on
# 127.0.0.1:2525, submission on 127.0.0.1:2587, data in ./sluice-data), with
# the example plugins installed in its plugins directory.
run: build
	sh scripts/build-plugins.sh dev sluice-data/plugins
	./$(BIN) serve

# The same server with the seven first-party anti-abuse plugins, configured
# as in examples/anti-abuse/plugins (dnsbl asks the public lists configured
# there through the system resolver).
run-anti-abuse: build plugins
	mkdir -p sluice-data/plugins
	for p in dnsbl helo greylist ratelimit sender-policy spamscore headers; do \
		cp plugins/$$p/$$p.wasm examples/anti-abuse/plugins/$$p.toml sluice-data/plugins/; \
	done
	./$(BIN) serve

# Install what the tests need (Dovecot LMTP, swaks, Postfix's smtp-sink),
# then run every test, fuzz seed corpora included.
test: test-deps
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 15m ./...

test-deps:
	bash scripts/install-test-deps.sh

# Go benchmarks and load runs against the real server beside smtp-sink;
# figures go to BENCHMARKS.md.
bench:
	bash scripts/bench.sh

# Run each fuzz target for FUZZTIME; new interesting inputs land in testdata/fuzz.
fuzz:
	bash scripts/fuzz.sh $(FUZZTIME)

clean:
	rm -rf bin
