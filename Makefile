# Two commands for a fresh machine:  make demo   |   make test
PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
RECIPE ?= recipes/digits-flow.yaml
BIN := $(VENV)/bin

.PHONY: setup setup-test demo test check format lint bench clean browser

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# torch first, pinned, so that no CUDA build is pulled on a CPU machine (override: make TORCH=torch==X)
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet "$(TORCH)"
	$(BIN)/pip install --quiet -e ".[test]"
	touch $@

$(VENV)/.installed-bench: $(VENV)/.installed
	$(BIN)/pip install --quiet -e ".[test,bench]"
	touch $@

setup: $(VENV)/.installed

RUN ?= runs/$(basename $(notdir $(RECIPE)))

# a second `make demo` continues (or just re-renders) the existing run instead of overwriting it
demo: setup
	@if [ -d $(RUN)/checkpoint ]; then $(BIN)/genlab train --resume $(RUN); \
	else $(BIN)/genlab train $(RECIPE) --out $(RUN); fi
	@echo "look at $(RUN)/samples.png, $(RUN)/loss.png and $(RUN)/metrics.jsonl"

# the house rules, checked by machine: formatting, lint, then the suite
# (PYTEST_ARGS="-n 2 --dist loadfile": 2 pytest-xdist workers, one file per worker at a time)
PYTEST_ARGS ?=
test: check browser
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# the web app's browser tests drive the system Chromium (Playwright cannot download its own browser offline);
# installed here when missing, so that `make test` stays one command on a fresh Debian machine
CHROMIUM ?= chromium
browser:
	@command -v $(CHROMIUM) >/dev/null 2>&1 || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null; }
	@command -v $(CHROMIUM) >/dev/null 2>&1 || { echo "chromium is needed by the browser tests: install it (apt-get install chromium)"; exit 1; }

check: setup
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/ruff check src tests benchmarks

format: setup
	$(BIN)/ruff format src tests benchmarks
	$(BIN)/ruff check --fix src tests benchmarks

lint: check

# run alone on a quiet machine: timings are distorted by anything else sharing the cores
bench: $(VENV)/.installed-bench
	$(BIN)/python benchmarks/toy2d_w2.py
	$(BIN)/python benchmarks/digits_quality.py
	$(BIN)/python benchmarks/unet_throughput.py
	$(BIN)/python benchmarks/sampler_accuracy.py
	$(BIN)/python benchmarks/eval_speed.py
	$(BIN)/python benchmarks/gan_gradients.py
	$(BIN)/python benchmarks/t2i_speed.py
	$(BIN)/python benchmarks/t2i_quality.py
	$(BIN)/python benchmarks/startup.py
	$(BIN)/python benchmarks/classifier_accuracy.py
	$(BIN)/python benchmarks/trainer_equivalence.py --label after
	$(BIN)/python benchmarks/demo_memorization.py
	$(BIN)/python benchmarks/distill_leaderboard.py
	$(BIN)/python benchmarks/image2image.py
	$(BIN)/python benchmarks/pix2pix_ablation.py
	$(BIN)/python benchmarks/cyclegan.py
	$(BIN)/python benchmarks/text_lm.py
	$(BIN)/python benchmarks/scaling.py
	$(BIN)/python benchmarks/vision_language.py
	$(BIN)/python benchmarks/geneval_shapes.py
	$(BIN)/python benchmarks/t2i_ablation.py
	$(BIN)/python benchmarks/t2i_families.py
	$(BIN)/python benchmarks/prompt2prompt.py
	$(BIN)/python benchmarks/textual_inversion.py
	$(BIN)/python benchmarks/adapters.py
	@if [ -d runs/digits-flow/checkpoint ]; then $(BIN)/python benchmarks/likelihood_digits.py; \
	  $(BIN)/python benchmarks/digits_samplers.py; else echo "train runs/digits-flow (make demo) for the likelihood and sampler studies"; fi
	@if [ -d runs/shapes-clip/checkpoint ]; then $(BIN)/python benchmarks/shapes_clip.py runs/shapes-clip; fi

clean:
	rm -rf $(VENV) runs
