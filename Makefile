# `make run`: set up, then open the workbench.  `make test`: set up, then run every test.
.PHONY: setup run test clean

setup:
	@scripts/setup.sh

run: setup
	@scripts/run.sh

test: setup
	.venv/bin/python -m pytest -q -rs

clean:
	rm -rf .venv *.egg-info
