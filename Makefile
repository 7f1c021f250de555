# Convenient aliases for voyandz's "arcane" commands (SPEC.txt, Repository Structure).
#
#   make demo           install what is missing, build, run config/demo.yaml
#   make test           every check CI runs: fmt, clippy, `make docs-check`, the whole test
#                       suite, `voyandz --check` of every shipped config, and `make e2e`
#   make docs           write the man pages (doc/man) and shell completions (doc/completions)
#                       from the clap definitions of voyandz and voyandzctl
#   make bench          install what is missing (setup, setup-bench), then the latency /
#                       fan-out benchmark with Icecast as its peer (prints a table)
#   make check-configs  `voyandz --check` of config/*.yaml and tests/data/upstream/*
#   make e2e            the units of systemd/ under a real systemd in a container (root;
#                       ~55 s the first time, ~22 s with the image cached; `make test` runs it
#                       on its debug build)

CARGO ?= cargo
# Extra arguments for the test runner, e.g. `make test TEST_ARGS=lifecycle`.
TEST_ARGS ?=
# Extra arguments for the benchmark, e.g. `make bench BENCH_ARGS=--help`.
BENCH_ARGS ?=
# The binary `make e2e` installs in its container.
E2E_BINARY ?= target/release/voyandz

DEMO_CONFIG := config/demo.yaml
DEMO_BASE := http://127.0.0.1:8090

.PHONY: all setup setup-bench build demo test fmt-check clippy docs docs-check unit-and-integration check-configs e2e bench clean

all: build

setup:
	@./scripts/setup-debian.sh

# What only the benchmark runs: Icecast, the fan-out rows' reference peer.
setup-bench:
	@./scripts/setup-bench.sh

build:
	$(CARGO) build --release

demo: setup build
	@echo
	@echo "voyandz demo ($(DEMO_CONFIG)); Ctrl-C stops it. Open or play:"
	@echo "  $(DEMO_BASE)/stream/ts        H.264 + AAC in MPEG-TS   (ffplay, mpv, vlc)"
	@echo "  $(DEMO_BASE)/stream/mjpeg     MJPEG for a browser <img> (open it in a browser)"
	@echo "  $(DEMO_BASE)/stream/mp3       MP3 audio                 (browser, ffplay, mpv)"
	@echo "  $(DEMO_BASE)/stream/shot      one PNG frame             (curl -o shot.png ...)"
	@echo "  $(DEMO_BASE)/stat             the status page           (a browser; /stat.json, /metrics)"
	@echo "  e.g.: ffplay -fflags nobuffer -flags low_delay $(DEMO_BASE)/stream/ts"
	@echo
	exec target/release/voyandz -f $(DEMO_CONFIG)

test: setup fmt-check clippy docs-check unit-and-integration check-configs
	@$(MAKE) --no-print-directory e2e E2E_BINARY=target/debug/voyandz
	@echo "make test: ok (fmt, clippy, docs, test suite, --check of every shipped config, systemd e2e)"

fmt-check:
	$(CARGO) fmt --all --check

clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# Man pages and completions come from the programs' clap definitions (tools/docgen), so they
# are regenerated whole: a page of a command that is gone goes with it.
docs:
	rm -rf doc/man doc/completions
	$(CARGO) run --quiet -p voyandz-docgen -- doc

# What is committed under doc/man and doc/completions must be what `make docs` writes now,
# and every page must render without a troff warning (man-db's man).
docs-check:
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	$(CARGO) run --quiet -p voyandz-docgen -- "$$tmp" && \
	if ! diff -r doc/man "$$tmp/man" || ! diff -r doc/completions "$$tmp/completions"; then \
		echo "docs-check: doc/man or doc/completions is out of date: run 'make docs' and commit them" >&2; \
		exit 1; \
	fi; \
	for page in doc/man/*; do \
		warnings=$$(man --warnings -l "$$page" 2>&1 >/dev/null); \
		if [ -n "$$warnings" ]; then echo "docs-check: $$page: $$warnings" >&2; exit 1; fi; \
	done; \
	echo "docs-check: doc/man and doc/completions are current"

# cargo-nextest (when installed) runs every test binary in parallel with per-test
# reports; it does not run doctests, so those run through cargo test afterwards.
unit-and-integration:
	@if $(CARGO) nextest --version >/dev/null 2>&1; then \
		echo "$(CARGO) nextest run --workspace --no-fail-fast $(TEST_ARGS)"; \
		$(CARGO) nextest run --workspace --no-fail-fast $(TEST_ARGS) && \
		echo "$(CARGO) test --workspace --doc" && \
		$(CARGO) test --workspace --doc; \
	else \
		echo "$(CARGO) test --workspace --no-fail-fast $(TEST_ARGS)"; \
		$(CARGO) test --workspace --no-fail-fast $(TEST_ARGS); \
	fi

# Every shipped config must load: ours and upstream voyandz 0.3.1's examples. Missing
# devices and video files are only warnings for --check, shown when a file fails.
check-configs:
	@$(CARGO) build --quiet --bin voyandz
	@fail=0; n=0; \
	for f in config/*.yaml tests/data/upstream/*; do \
		[ -f "$$f" ] || continue; \
		case "$${f##*/}" in LICENSE*|NOTICE*|README*|*.md|*.txt) continue ;; esac; \
		n=$$((n + 1)); \
		if err=$$($(CARGO) run --quiet --bin voyandz -- --check -f "$$f" 2>&1 >/dev/null); then \
			echo "ok    $$f"; \
		else \
			echo "FAIL  $$f"; echo "$$err" | sed 's/^/      /'; fail=1; \
		fi; \
	done; \
	echo "check-configs: $$n configs checked"; \
	[ "$$n" -gt 0 ] && [ "$$fail" -eq 0 ]

# Socket activation, sandbox, journal, reload, watchdog and stop under systemd as PID 1 in
# systemd-nspawn (scripts/systemd-e2e.sh says what it checks). Installs systemd-container and
# mmdebstrap if missing; caches the guest image under /var/tmp/voyandz-e2e.
# E2E_BINARY=target/debug/voyandz reuses the build of `make test` instead of a release build.
e2e:
	$(CARGO) build $(if $(filter target/release/%,$(E2E_BINARY)),--release) --bin voyandz
	./scripts/systemd-e2e.sh $(E2E_BINARY)

bench: setup setup-bench
	$(CARGO) run --release -p voyandz-bench -- $(BENCH_ARGS)

clean:
	$(CARGO) clean
