# `make demo` and `make test` are the only commands a newcomer needs: each creates .venv when missing and
# installs the project into it with the versions the parity results were measured with (constraints.txt).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO := runs/demo
DEMO_EPOCHS ?= 5

.PHONY: demo test lint parity clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .

test: lint
	$(BIN)/pytest -q

demo: $(STAMP)
	$(BIN)/gan-parity data --dataset digits --out $(DEMO)/data
	$(BIN)/gan-torch train dcgan --dataset digits --epochs $(DEMO_EPOCHS) --out $(DEMO)/torch/dcgan
	$(BIN)/gan-keras train dcgan --dataset digits --epochs $(DEMO_EPOCHS) --out $(DEMO)/keras/dcgan
	$(BIN)/gan-parity check dcgan

parity: $(STAMP)
	$(BIN)/gan-parity check dcgan --dtype float64 float32

clean:
	rm -rf $(DEMO) .pytest_cache .ruff_cache
