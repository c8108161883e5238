# `make demo` and `make test` are the only commands a newcomer needs: each creates .venv when missing and
# installs the project into it with both backends and Keras's three ([all]: torch, TensorFlow, JAX; the parity
# layer runs them side by side) and the versions the parity results were measured with (constraints.txt).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO := runs/demo
# The demo's budgets: the digits presets at batch 32 (twice the generator steps an epoch at about the same cost), the
# critic models at width 32 and learning rate 4e-4 (the CGAN's rows take their digits in fewer steps).
DEMO_TRAIN := --dataset digits --batch-size 32 --quiet
CRITIC_DEMO := --width 32 --learning-rate 4e-4
DCGAN_EPOCHS ?= 8
WGAN_GP_EPOCHS ?= 8
CGAN_EPOCHS ?= 12

.PHONY: demo test lint parity docs gpu-check clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[all,dev]'
	touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .

test: lint
	$(BIN)/pytest -q -m "not slow" --durations=15

# The main job on the embedded digits, both backends: data parity, each model trained briefly (a fresh run each
# time), sample grids under runs/demo/<backend>/<model>/samples, the parity checks of every model's digits preset,
# and each run's FID, KID (and the CGAN's class accuracy) beside the real-vs-real floor.
demo: $(STAMP)
	rm -rf $(DEMO)
	$(BIN)/gan-parity data --dataset digits --out $(DEMO)/data
	$(BIN)/gan-torch train dcgan $(DEMO_TRAIN) --epochs $(DCGAN_EPOCHS) --out $(DEMO)/torch/dcgan
	$(BIN)/gan-keras train dcgan $(DEMO_TRAIN) --epochs $(DCGAN_EPOCHS) --out $(DEMO)/keras/dcgan
	$(BIN)/gan-torch train wgan_gp $(DEMO_TRAIN) $(CRITIC_DEMO) --epochs $(WGAN_GP_EPOCHS) --out $(DEMO)/torch/wgan_gp
	$(BIN)/gan-keras train wgan_gp $(DEMO_TRAIN) $(CRITIC_DEMO) --epochs $(WGAN_GP_EPOCHS) --out $(DEMO)/keras/wgan_gp
	$(BIN)/gan-torch train cgan $(DEMO_TRAIN) $(CRITIC_DEMO) --epochs $(CGAN_EPOCHS) --out $(DEMO)/torch/cgan
	$(BIN)/gan-keras train cgan $(DEMO_TRAIN) $(CRITIC_DEMO) --epochs $(CGAN_EPOCHS) --out $(DEMO)/keras/cgan
	$(BIN)/gan-parity check dcgan wgan_gp cgan --preset digits
	$(BIN)/gan-parity quality $(DEMO)/torch/dcgan $(DEMO)/keras/dcgan $(DEMO)/torch/wgan_gp $(DEMO)/keras/wgan_gp \
		$(DEMO)/torch/cgan $(DEMO)/keras/cgan

# Every check of every model and preset (the published models' five included), in float64 and float32, on each
# Keras backend (a process each), and the pitfall catalogue on each.
parity: $(STAMP)
	$(BIN)/gan-parity check dcgan wgan_gp cgan published --dtype float64 float32 --keras-backend all
	$(BIN)/gan-parity pitfalls --keras-backend all

# On a machine with a CUDA GPU (about 8 minutes): parity of DCGAN, WGAN-GP and CGAN on the GPU in float64 and float32
# (TF32 off), a short run of each with gan-torch and gan-keras (TensorFlow) in float32 and bfloat16 with --device
# cuda, and images/s on the GPU against the CPU. Elsewhere it stops at once with one line and status 2.
gpu-check: $(STAMP)
	PYTHON=$(BIN)/python benchmarks/gpu_check.sh

# The side-by-side reading pages: docs/index.html, docs/<model>.html (with the model's parity table, measured while
# building, in both precisions), docs/pitfalls.html and docs/compare.html (checking one's own port).
docs: $(STAMP)
	$(BIN)/gan-parity sidebyside dcgan wgan_gp cgan published --tutorial --out docs

clean:
	rm -rf $(DEMO) docs/*.html .pytest_cache .ruff_cache
