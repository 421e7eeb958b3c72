# The README's commands. `make setup` builds the environment that everything else uses
# (make demo, make test, the SLURM scripts).
VENV ?= .venv
PYTHON ?= python3
# CPU wheel on CPU machines; on a GPU cluster: make setup TORCH="torch==<the build your CUDA needs>"
TORCH ?= torch==2.13.0
PY := $(VENV)/bin/python
DEEPSPEED := $(VENV)/bin/deepspeed
# The demo through the deepspeed launcher: one process per visible GPU, or 2 CPU processes.
DEMO_PROCS ?= $(shell $(PY) -c "from launcher.distributed import processes_per_node; print(processes_per_node())")
DEMO_WORLD := worlds/demo

# Offline installs (docs/install.md): `make wheels` on a networked machine collects what spangpt needs
# besides torch; `make setup-offline WHEELS=dir` installs it next to the torch of $(PYTHON), no network.
WHEELS ?= wheels
WHEEL_PYTHONS ?= 3.12
WHEEL_ONLY ?=

.PHONY: setup setup-offline wheels demo test bench clean
setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH)"
	$(PY) -m pip install --quiet -e ".[test,hf]"
	$(PY) -m launcher.build_ops
	touch $@

wheels: setup
	$(PY) -m install.wheels $(WHEELS) $(foreach v,$(WHEEL_PYTHONS),--python $(v)) $(if $(WHEEL_ONLY),--only $(WHEEL_ONLY))

setup-offline:
	$(PYTHON) -m install.offline --wheels $(WHEELS) --venv $(VENV)

demo: setup
	$(PY) -m data.synthetic $(DEMO_WORLD) --seed 0 --train 100 --dev 100 --test 50 --places 20 --force
	$(DEEPSPEED) --num_gpus $(DEMO_PROCS) launcher/train.py --config configs/demo/pretrain.yaml
	$(DEEPSPEED) --num_gpus $(DEMO_PROCS) launcher/train.py --config configs/demo/finetune.yaml
	$(DEEPSPEED) --num_gpus $(DEMO_PROCS) launcher/train.py --config configs/demo/finetune_scratch.yaml
	@echo
	@$(PY) -m experiments.accuracy runs/demo/vanilla/finetune runs/demo/vanilla/finetune_scratch \
		--label "pretrained, then finetuned" --label "no pretraining         "

# The 20 slowest tests close the output: the suite's budget is 25 minutes on CI's 2 cores
test: setup
	$(PY) -m pytest -q --durations=20

# Speed and memory against baselines measured in the same run (bench/run.py; about 12 minutes on 2 cores)
bench: setup
	$(PY) -m bench.run $(BENCH_ARGS)

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache runs worlds
