# kinefuse — every set-up step lives here, so a bare machine needs only python3 (with venv) and a C compiler.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
# Debian packages the tests need: GStreamer's RTSP server (a local RTSP camera for the camera tests), and
# qemu-user: qemu-x86_64 -cpu Haswell runs MoveNet on an emulated x86-64 CPU without VNNI, where onnxruntime's
# fused int8 kernels saturate (plugins/camera/tests/test_int8_path.py, docs/pose.md)
SYSTEM_PACKAGES := gir1.2-gst-rtsp-server-1.0 python3-gi gstreamer1.0-plugins-base gstreamer1.0-plugins-good \
	qemu-user
SYSTEM_DEPS := $(VENV)/.system-packages
# The optional mediapipe_pose plugin: mediapipe without its declared requirements (they pull a second
# OpenCV and jax; pyproject's [mediapipe] extra lists what its pose solution needs). 0.10.14 ships the
# BlazePose full model inside the wheel, so nothing is downloaded at run time.
MEDIAPIPE := $(VENV)/.mediapipe
CONFIG ?= config.toml
# make test stays under 15 minutes on 2 cores; tests marked slow run there too (they are bounded); tests marked
# soak (a minute or more of one scenario) run in make test-soak only. The tests run in PYTEST_WORKERS processes
# (pytest-xdist; a module's tests stay in one, so its shared fixtures run once); 0 runs them in this one.
PYTEST_ARGS ?=
PYTEST_WORKERS ?= 2

.PHONY: run test test-soak bench bench-docs accuracy lint clean build mediapipe fuzz test-bluez

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Reinstalling rebuilds the Cython kernels in ext/ whenever a .pyx or the build files change (once: the
# mediapipe extra's few requirements come along, so the mediapipe step below need not build again). Pose2Sim
# and gaitmap, bench peers, go in without their declared requirements (pyproject's bench extra says why).
$(INSTALLED): $(BIN)/python pyproject.toml setup.py $(wildcard ext/*.pyx)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench,mediapipe]'
	$(BIN)/python -m pip install --quiet --no-deps pose2sim==0.10.49 gaitmap==2.6.0 gaitmap_mad==2.6.0
	touch $@

build: $(INSTALLED)

run: $(INSTALLED)
	$(BIN)/kinefuse run --config $(CONFIG)

# Rechecked when the Makefile changes, so a package added to SYSTEM_PACKAGES reaches existing checkouts too.
$(SYSTEM_DEPS): $(BIN)/python Makefile
	dpkg -s $(SYSTEM_PACKAGES) >/dev/null 2>&1 || \
		{ apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $(SYSTEM_PACKAGES); }
	touch $@

$(MEDIAPIPE): $(INSTALLED)
	$(BIN)/python -m pip install --quiet --no-deps mediapipe==0.10.14
	touch $@

mediapipe: $(MEDIAPIPE)

# lint-imports checks the layering contracts in pyproject.toml ([tool.importlinter]) before the tests run.
test: $(INSTALLED) $(SYSTEM_DEPS) $(MEDIAPIPE)
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -m "not soak" -n $(PYTEST_WORKERS) --dist loadscope $(PYTEST_ARGS)

test-soak: $(INSTALLED)
	$(BIN)/python -m pytest -m soak $(PYTEST_ARGS)

# At least a million inputs per BLE decoder (atheris, coverage-guided); make test runs a short hypothesis fuzz.
fuzz: $(INSTALLED)
	$(BIN)/python -m pip install --quiet atheris
	$(BIN)/python -m plugins.ble_imu.tests.fuzz_decoders

# Optional, not part of make test: the ble_imu scenarios through real BlueZ (bleak's D-Bus backend, bluetoothd,
# the kernel's Bluetooth stack) in a QEMU guest started by virtme-ng, on a bumble controller attached over
# /dev/vhci (tests/bluez, tools/bluez). Needs root for apt-get; without KVM it takes several minutes.
BLUEZ_PACKAGES := qemu-system-x86 linux-image-amd64 bluez dbus kmod udev busybox-static
test-bluez: $(INSTALLED)
	dpkg -s $(BLUEZ_PACKAGES) >/dev/null 2>&1 || \
		{ apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $(BLUEZ_PACKAGES); }
	$(BIN)/python -m pip show --quiet virtme-ng >/dev/null 2>&1 || $(BIN)/python -m pip install --quiet virtme-ng
	tools/bluez/run-guest.sh $(PYTEST_ARGS)

bench: $(INSTALLED)
	$(BIN)/kinefuse bench pipeline --json bench-pipeline.json

# Every speed bench, its rows as JSON and Markdown under docs/bench/ (the figures docs/bench.md links to).
# Speed depends on the machine: run it on a quiet one; each page's note names the CPU it ran on.
SPEED_BENCHES := pipeline kalman ahrs pose ble stream analyze triangulate
bench-docs: $(INSTALLED)
	mkdir -p docs/bench
	for name in $(SPEED_BENCHES); do \
		$(BIN)/kinefuse bench $$name --json docs/bench/$$name.json && \
		$(BIN)/kinefuse report docs/bench/$$name.json --out docs/bench/$$name.md || exit 1; \
	done

# Scores every stage on the synthetic suite and the public data; docs/accuracy.md is generated, never typed.
accuracy: $(INSTALLED)
	$(BIN)/kinefuse bench accuracy --json docs/accuracy.json
	$(BIN)/kinefuse report docs/accuracy.json --out docs/accuracy.md

lint: $(INSTALLED)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) build dist *.egg-info ext/*.c ext/*.so .pytest_cache .ruff_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
