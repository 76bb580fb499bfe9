# The two commands of the README: `make run` and `make test`.
.PHONY: run test setup setup-test screenshots bench clean

run: setup
	.venv/bin/sandra-tui

test: setup-test
	scripts/test.sh

setup:
	scripts/setup.sh run

setup-test:
	scripts/setup.sh test

clean:
	rm -rf .venv build *.egg-info .pytest_cache
