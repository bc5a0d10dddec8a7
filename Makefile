# The two commands of the README, and the benchmark. Each sets up what it needs itself.
.PHONY: dev test build fuzz

dev:
	bash scripts/dev.sh

test:
	bash scripts/test.sh

build:
	bash scripts/setup.sh && bash scripts/build.sh

# Every cargo-fuzz target for FUZZ_SECONDS (default 60) each; needs nightly (see scripts/fuzz.sh).
fuzz:
	bash scripts/fuzz.sh
