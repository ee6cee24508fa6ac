# The README's two set-up commands. Each installs what it needs, idempotently.
.PHONY: test demo setup

setup:
	scripts/setup-host

test: setup
	.venv/bin/ruff check lib method controller devhost tests
	scripts/typecheck
	.venv/bin/python tests/guest/build.py
	.venv/bin/pytest -q

demo: setup
	.venv/bin/python tests/guest/build.py
	scripts/demo
