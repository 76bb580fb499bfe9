# Shortcuts for the README's two commands (scripts/run.sh, scripts/test.sh) and friends.
.PHONY: run test setup bench bench-full screenshots clean

run:
	scripts/run.sh

test:
	scripts/test.sh

setup:
	scripts/setup.sh test

bench:
	scripts/bench.sh --quick

bench-full:
	scripts/bench.sh --full

screenshots:
	PYTHONPATH=$(CURDIR) .venv/bin/python scripts/screenshots.py

clean:
	rm -rf .venv build *.egg-info .pytest_cache
