# CuteGPT: common tasks. `make help` lists them.
PYTHON ?= python
PROMPT ?= the cat sat on the
PHRASE ?= the ___ sat on the mat
# DEVICE=cuda (or cpu, mps) trains / benchmarks there: `make bench DEVICE=cuda`. Empty: --device auto.
DEVICE ?=
DEVICE_ARG = $(if $(DEVICE),--device $(DEVICE))

.PHONY: help install install-dev run run-bpe run-chat generate complete evaluate inspect test test-fast app bench visualize clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

install:  ## install the app's requirements
	$(PYTHON) -m pip install -r requirements.txt

install-dev:  ## install requirements + test tools
	$(PYTHON) -m pip install -r requirements-dev.txt

run:  ## train the default model on data/training_data.txt -> models/cute_llm.pth
	$(PYTHON) -m cutellm train --corpus data/training_data.txt --out models/cute_llm.pth $(DEVICE_ARG) $(ARGS)

run-bpe:  ## train the shipped subword (BPE) model on data/training_data.txt -> models/cute_bpe.pth
	$(PYTHON) -m cutellm train --tokenizer bpe --corpus data/training_data.txt --out models/cute_bpe.pth $(DEVICE_ARG) $(ARGS)

run-chat:  ## pretrain the chat preset, then instruction-tune it on data/chat_train.jsonl -> models/cute_chat.pth (+ its base), and score both
	$(PYTHON) -m cutellm train --preset chat --corpus data/training_data.txt --out models/cute_chat_base.pth $(DEVICE_ARG) $(ARGS)
	$(PYTHON) -m cutellm sft --init-from models/cute_chat_base.pth --data data/chat_train.jsonl --out models/cute_chat.pth $(DEVICE_ARG)
	$(PYTHON) -m cutellm evaluate-chat data/chat_eval.jsonl --model models/cute_chat.pth --out bench/chat_eval_cute_chat.json
	$(PYTHON) -m cutellm evaluate-chat data/chat_eval.jsonl --model models/cute_chat_base.pth --out bench/chat_eval_cute_chat_base.json

generate:  ## continue PROMPT with the shipped model (greedy; add ARGS="--temperature 0.8 --seed 1")
	$(PYTHON) -m cutellm generate "$(PROMPT)" --probs $(ARGS)

complete:  ## fill the ___ blanks of PHRASE
	$(PYTHON) -m cutellm complete "$(PHRASE)"

evaluate:  ## blank-filling accuracy of the shipped models on data/blanks_eval.txt (JSON in bench/)
	$(PYTHON) -m cutellm evaluate-blanks data/blanks_eval.txt --model models/cute_llm.pth --out bench/blanks_eval_cute_llm.json
	$(PYTHON) -m cutellm evaluate-blanks data/blanks_eval.txt --model models/cute_bpe.pth --out bench/blanks_eval_cute_bpe.json

inspect:  ## describe the shipped model
	$(PYTHON) -m cutellm inspect $(ARGS)

test:  ## run every test (browser tests skip without Chromium)
	$(PYTHON) -m pytest

test-fast:  ## core unit tests only
	$(PYTHON) -m pytest tests --ignore=tests/e2e --ignore=tests/app -q

app:  ## start the playground in the browser
	$(PYTHON) -m streamlit run streamlit_app.py

bench:  ## train/generation benchmark vs nanoGPT (table + bench/results.json); DEVICE=cuda on a GPU
	$(PYTHON) -m cutellm bench $(DEVICE_ARG) $(ARGS)

visualize:  ## export every Explore figure to docs/model_visualizations.html
	$(PYTHON) -m cutellm visualize --out docs/ $(ARGS)

clean:  ## remove caches and test artifacts
	rm -rf .pytest_cache tests/e2e/artifacts bench/results.json bench/blanks_eval*.json
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
