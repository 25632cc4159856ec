# Entry points a newcomer types: make demo, make test, make cluster.
# Everything the project needs is installed by these targets: npm packages (Node 24 comes as the `node` npm
# package), Prometheus/VictoriaMetrics unpacked from Debian's packages, and the control plane built from Go source.
# Heavy caches live outside the clone, under $(CACHE_ROOT).

SHELL := /bin/bash
CACHE_ROOT ?= $(or $(METRICS_PUSHER_CACHE),$(or $(XDG_CACHE_HOME),$(HOME)/.cache)/metrics-pusher)
export METRICS_PUSHER_CACHE := $(CACHE_ROOT)
export PATH := $(CURDIR)/node_modules/.bin:$(PATH)
NODE := $(CURDIR)/node_modules/.bin/node

.PHONY: all deps npm peers controlplane node images build crds lint test test-unit test-node demo cluster bench soak clean

all: build

node_modules/.installed: package.json package-lock.json pusher/package.json operator/package.json
	npm ci --no-audit --no-fund
	@touch $@

npm: node_modules/.installed

peers:
	@test/peers/fetch.sh >/dev/null

controlplane:
	@test/controlplane/build.sh >/dev/null

# The node bed's parts besides the Kubernetes binaries: Debian packages (as root), CoreDNS, pause, test images.
node: npm
	@test/node/build.sh >/dev/null

# The images too: the node tests run the operator and the pusher from them, and a cold machine has none yet.
deps: npm peers controlplane node images

# The operator and pusher images, and the sample builder's stand-in, as `docker save` archives under
# $(CACHE_ROOT)/images; prints the two image references. Needs root (it runs its own dockerd and mmdebstrap).
images: npm
	@test/node/images/build.sh

build: npm
	$(NODE) node_modules/.bin/tsc -b

# crds/ is generated from operator/src/api/; a unit test (crd.test.ts) fails `make test` while it is stale.
crds: npm
	$(NODE) --conditions=source scripts/gen-crds.ts

# The formatter and the type-aware linter: any finding fails `make test`.
lint: npm
	$(NODE) node_modules/.bin/prettier --check .
	$(NODE) node_modules/.bin/eslint --max-warnings 0 .

test: deps build lint
	$(NODE) scripts/run-tests.ts

test-unit: npm build
	$(NODE) scripts/run-tests.ts unit

test-node: npm controlplane node build
	$(NODE) scripts/run-tests.ts node

demo: deps build
	$(NODE) --conditions=source test/demo/demo.ts

cluster: npm controlplane node
	$(NODE) --conditions=source test/controlplane/cluster.ts

bench: deps build
	$(NODE) --conditions=source test/bench/run.ts

soak: deps build
	SOAK=1 $(NODE) scripts/run-tests.ts reliability
	$(NODE) --conditions=source test/bench/run.ts --only churn --runs 1

clean:
	rm -rf node_modules pusher/dist operator/dist
