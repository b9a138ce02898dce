# optbench images. Three targets:
#   cpu: the CPU runtimes (torch, ONNX Runtime, OpenVINO)      docker build --target cpu -t optbench:cpu .
#   gpu: CUDA 13 torch, onnxruntime-gpu, TensorRT 11, NVML     docker build --target gpu -t optbench:gpu .
#   gpu-vllm: gpu plus vLLM in its own venv and pins           docker build --target gpu-vllm ...
# First check what works on the host (exit 0 when every path does):
#   docker run --rm --gpus all optbench:gpu env --check
# Run (GPU; powercap mounted read-only so RAPL works, results and cache kept on the host):
#   docker run --rm --gpus all -v /sys/class/powercap:/sys/class/powercap:ro \
#     -v "$PWD/reports:/optbench/reports" -v optbench-cache:/cache \
#     optbench:gpu compare --model resnet50 --backends ort,trt,torch --int8 --fp16
# The entry point is `optbench`; every subcommand and flag works as on the host.

ARG PYTHON_VERSION=3.11

FROM python:${PYTHON_VERSION}-slim AS cpu
ENV PIP_NO_CACHE_DIR=1 PYTHONUNBUFFERED=1 OPTBENCH_CACHE=/cache
WORKDIR /opt/optbench
COPY pyproject.toml constraints.txt README.md ./
COPY optbench ./optbench
COPY recipes ./recipes
# PyTorch's CPU index: torch 2.13.0+cpu satisfies the pin without GBs of CUDA wheels.
RUN python -m pip install --extra-index-url https://download.pytorch.org/whl/cpu \
      -c constraints.txt ".[cpu]"
WORKDIR /optbench
VOLUME ["/cache", "/optbench/reports"]
ENTRYPOINT ["optbench"]
CMD ["--help"]

# No CUDA base image: the CUDA 13 user-space libraries come from the pinned wheels
# (torch's nvidia-*-cu13, onnxruntime-gpu[cuda,cudnn], tensorrt-cu13-libs), so nothing in
# the image can disagree with them; the driver comes from the host (--gpus all; it must be
# >= 580 for CUDA 13). docker/constraints-gpu.txt pins the stack and names its CUDA major.
# ONNX Runtime loads the pip CUDA libraries itself (onnxruntime.preload_dlls); TensorRT's
# are put on the library path for its ONNX Runtime provider.
FROM python:${PYTHON_VERSION}-slim AS gpu
ARG PYTHON_VERSION
ENV PIP_NO_CACHE_DIR=1 PYTHONUNBUFFERED=1 OPTBENCH_CACHE=/cache \
    VIRTUAL_ENV=/opt/venv PATH=/opt/venv/bin:$PATH CUDA_DEVICE_ORDER=PCI_BUS_ID \
    LD_LIBRARY_PATH=/opt/venv/lib/python${PYTHON_VERSION}/site-packages/tensorrt_libs
RUN python -m venv /opt/venv
WORKDIR /opt/optbench
COPY pyproject.toml constraints.txt README.md ./
COPY docker ./docker
COPY optbench ./optbench
COPY recipes ./recipes
# onnxruntime-gpu replaces the CPU onnxruntime; TensorRT's wheels are on NVIDIA's index
# (PyPI has its source metapackages, which fetch them from there); transformers + optimum-onnx (without its
# CPU onnxruntime extra) serve the LLM workload.
RUN grep -v -E '^(onnxruntime|openvino|nncf)==' constraints.txt > /tmp/constraints-gpu.txt \
 && cat docker/constraints-gpu.txt >> /tmp/constraints-gpu.txt \
 && pip install --extra-index-url https://pypi.nvidia.com -c /tmp/constraints-gpu.txt \
      ".[torch,data,report,nvml,search]" onnx onnxscript \
      "onnxruntime-gpu[cuda,cudnn]" tensorrt-cu13 transformers tokenizers optimum-onnx
WORKDIR /optbench
VOLUME ["/cache", "/optbench/reports"]
ENTRYPOINT ["optbench"]
CMD ["env", "--check"]

# vLLM in its own environment and pins (docker/constraints-vllm.txt): no vLLM release fits
# the main constraints. optbench itself is installed without dependencies there, then its
# few core ones: the vllm backend and the meters are what this target is for.
FROM gpu AS gpu-vllm
RUN python -m venv /opt/vllm \
 && /opt/vllm/bin/pip install -c /opt/optbench/docker/constraints-vllm.txt vllm nvidia-ml-py \
 && /opt/vllm/bin/pip install --no-deps /opt/optbench \
 && /opt/vllm/bin/pip install -c /opt/optbench/constraints.txt numpy pyyaml typer rich
ENV VIRTUAL_ENV=/opt/vllm PATH=/opt/vllm/bin:$PATH
WORKDIR /optbench
ENTRYPOINT ["optbench"]
CMD ["env", "--check", "--paths", "torch:cuda,vllm:cuda,nvml"]
