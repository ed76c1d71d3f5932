# edge-runtime: the two commands of README.md, and the steps they are made of.
#   make demo   set up a venv, fetch the real assets, run the built-in default job
#   make test   set up a venv with every extra, fetch the assets, run the whole suite (+ ARM under qemu)

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
# The CPU build of torch for the converter extras. Override on machines that get torch elsewhere.
TORCH_SPEC ?= torch==2.13.0

.PHONY: demo test setup setup-dev native assets system-deps pytest cross cross-test bench soak clean sanitize fuzz

$(VENV)/.created:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q -U pip
	touch $@

# llama-cpp-python is compiled here for this CPU: pip's build exports SOURCE_DATE_EPOCH, which makes ggml
# build for a portable baseline (AVX2 on x86-64, no dot product on aarch64) unless GGML_NATIVE is asked
# for. --no-cache-dir: a wheel pip cached from such a build would otherwise be reused.
# On x86-64 the AMX instructions are left out even where the CPU has them: ggml's AMX weight repacking
# crashes the first decode on virtualised Sapphire Rapids-class Xeons (ggml-org/llama.cpp#20824); GCC and
# clang give an explicit -mno-* precedence over -march=native wherever it stands.
LLAMA_NO_AMX := $(if $(filter x86_64 amd64,$(shell uname -m)),-DCMAKE_C_FLAGS='-mno-amx-tile -mno-amx-int8 -mno-amx-bf16' -DCMAKE_CXX_FLAGS='-mno-amx-tile -mno-amx-int8 -mno-amx-bf16')
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=ON $(LLAMA_NO_AMX)
LLAMA_SPEC := $(shell grep -o '"llama-cpp-python[^"]*"' pyproject.toml | tr -d '"')

# Core + the chat extra: what a board needs to run the main job.
$(VENV)/.setup: $(VENV)/.created pyproject.toml CMakeLists.txt
	$(PIP) install -q scikit-build-core pybind11 ninja
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(PIP) install -q --no-cache-dir '$(LLAMA_SPEC)'
	$(PIP) install -q --no-build-isolation -e '.[llm]'
	touch $@

# Everything the test suite needs on top: dev tools and the converter extras (torch, transformers).
# Peers measured side by side in benchmarks/ (and in a few tests): no-deps, see pyproject's `peers` extra.
PEERS_SPEC ?= trackers==2.6.1 supervision==0.31.2

$(VENV)/.setup-dev: $(VENV)/.setup
	$(PIP) install -q '$(TORCH_SPEC)'
	$(PIP) install -q --no-build-isolation -e '.[llm,mqtt,link,convert,dev,peers]'
	$(PIP) install -q --no-deps $(PEERS_SPEC)
	touch $@

setup: $(VENV)/.setup
setup-dev: $(VENV)/.setup-dev

# Rebuild the C++ module after editing native/ (incremental; serialised so parallel callers don't race).
native: $(VENV)/.setup
	VENV=$(VENV) bash scripts/build_native.sh

# The native module built with ASan + UBSan (build/sanitize) and the native + hypothesis suites run on it
# (tests/test_sanitize.py does the same inside `make test`). SANITIZE_HYPOTHESIS_PROFILE=sanitize-long: 10x the examples.
sanitize: $(VENV)/.setup-dev
	VENV=$(VENV) bash scripts/sanitize.sh

# Every fuzz target (tests/fuzz/targets.py) for FUZZ_SECONDS each (default 300; `make test` runs 6 s each).
# A finding stops with exit 1 and leaves crash-* / timeout-* in FUZZ_ARTIFACTS (default build/fuzz).
FUZZ_SECONDS ?= 300
FUZZ_TARGETS ?= gguf onnx model_meta shapes config_toml config_yaml chat_request chat_app link
fuzz: $(VENV)/.setup-dev assets
	mkdir -p build/fuzz
	for t in $(FUZZ_TARGETS); do echo "fuzz: $$t for $(FUZZ_SECONDS) s"; \
	  FUZZ_SECONDS=$(FUZZ_SECONDS) FUZZ_ARTIFACTS=$${FUZZ_ARTIFACTS:-build/fuzz} $(PY) tests/fuzz/run.py $$t || exit 1; done

assets: $(VENV)/.setup
	$(VENV)/bin/edge-runtime assets fetch

# The built-in job: the real person detector on the real pedestrian video, a line across the walkway,
# live counts, a summary, then a question about the counts answered by the local LLM.
demo: assets
	$(VENV)/bin/edge-runtime run --db '' --ask "How many people crossed the walkway line?"

# System packages the suite needs: mosquitto (the MQTT tests' broker; each test starts its own), and for the
# RT-Thread link the bare-metal ARM compiler, qemu-system-arm (an emulated Cortex-M3 board) and clang (libFuzzer
# with ASan/UBSan on the C frame parser), and headless chromium + chromedriver (the dashboard's browser tests).
# SYSTEM_PACKAGES have no command to look for and are checked with dpkg: the RTSP camera of
# tests/test_camera_faults.py (gst-rtsp-server through PyGObject; plugins-good decode the clips and packetise RTP,
# plugins-bad has the openh264 encoder and the H.264 parser). Installed
# with apt-get when missing and run as root; otherwise the command to run is printed (and CI fails).
SYSTEM_DEPS := mosquitto:mosquitto arm-none-eabi-gcc:gcc-arm-none-eabi qemu-system-arm:qemu-system-arm clang:clang \
               chromium:chromium chromedriver:chromium-driver
SYSTEM_PACKAGES := python3-gi python3-gst-1.0 gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
system-deps:
	@missing=""; for d in $(SYSTEM_DEPS); do cmd=$${d%%:*}; pkg=$${d##*:}; \
	  command -v $$cmd >/dev/null 2>&1 || test -x /usr/sbin/$$cmd || missing="$$missing $$pkg"; done; \
	for pkg in $(SYSTEM_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$pkg 2>/dev/null | grep -q 'ok installed' || missing="$$missing $$pkg"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get install -y -q $$missing >/dev/null 2>&1 || { apt-get update -q && apt-get install -y -q $$missing; }; \
	  else echo "make: the test suite needs:$$missing (sudo apt-get install$$missing)"; fi; fi

pytest: $(VENV)/.setup-dev assets system-deps
	$(PY) -m pytest -q

# ARM wheels (manylinux_2_34 aarch64 + armv7l) and their tests under qemu (Cortex-A72, A76, A7).
cross: $(VENV)/.setup
	VENV=$(VENV) bash scripts/cross_build.sh

cross-test: cross
	VENV=$(VENV) bash scripts/cross_test.sh

# The ARM stage first: it also installs the cross compilers and qemu that tests/test_link.py uses.
test: cross-test pytest

# Every benchmark, one after the other (each writes benchmarks/results/NAME.json). Run on a quiet machine.
BENCHMARKS ?= bench_kernels bench_tracker bench_quant "bench_pipeline --motion-gate" bench_int8 bench_llm bench_cosched \
              "bench_counting --int8 --live" identity bench_grounding bench_mqtt bench_link bench_dashboard "bench_flow --split tune --variants none flow flow_measure flow_scale det det_gate05 --json benchmarks/results/flow.json"
bench: $(VENV)/.setup-dev assets
	for b in $(BENCHMARKS); do $(PY) -m benchmarks.$$b || exit 1; done
	$(PY) -m benchmarks.report_counting
	$(PY) -m benchmarks.report

# The soak: the job and its chat server under a steady request load for 30 minutes, then the same job without
# load; RSS, fds, threads, counts and frame age compared (benchmarks/results/soak.json + soak.png). Quiet machine.
SOAK_MINUTES ?= 30
soak: $(VENV)/.setup-dev assets
	$(PY) -m benchmarks.bench_soak --minutes $(SOAK_MINUTES)

clean:
	rm -rf build dist wheelhouse .pytest_cache .hypothesis
