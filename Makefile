# The two commands of the README, and the benchmark. Each sets up what it needs itself.
.PHONY: dev test build

dev:
	bash scripts/dev.sh

test:
	bash scripts/test.sh

build:
	bash scripts/setup.sh && bash scripts/build.sh
