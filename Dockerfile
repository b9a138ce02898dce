# optbench images. Two targets:
#   cpu: the CPU runtimes (torch, ONNX Runtime, OpenVINO)      docker build --target cpu -t optbench:cpu .
#   gpu: CUDA torch, onnxruntime-gpu, TensorRT, NVML            docker build --target gpu -t optbench:gpu .
#        (add vLLM with --build-arg WITH_VLLM=1; it brings its own torch)
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

# CUDA 12 runtime with cuDNN; torch 2.13.0 from PyPI is its CUDA 12 build on Linux x86_64.
FROM nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04 AS gpu
ARG WITH_VLLM=0
ENV PIP_NO_CACHE_DIR=1 PYTHONUNBUFFERED=1 OPTBENCH_CACHE=/cache \
    VIRTUAL_ENV=/opt/venv PATH=/opt/venv/bin:$PATH CUDA_DEVICE_ORDER=PCI_BUS_ID
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv python3-pip \
 && rm -rf /var/lib/apt/lists/* \
 && python3 -m venv /opt/venv
WORKDIR /opt/optbench
COPY pyproject.toml constraints.txt README.md ./
COPY optbench ./optbench
COPY recipes ./recipes
# onnxruntime-gpu replaces the CPU onnxruntime; tensorrt comes from NVIDIA's index via pip.
# transformers + optimum-onnx (without its CPU onnxruntime extra) serve the LLM workload.
RUN grep -v -E '^(onnxruntime|openvino|nncf)==' constraints.txt > /tmp/constraints-gpu.txt \
 && pip install -c /tmp/constraints-gpu.txt ".[torch,data,report,nvml]" onnx onnxscript \
      "onnxruntime-gpu>=1.22" "tensorrt>=10.9,<11" transformers tokenizers optimum-onnx \
 && if [ "$WITH_VLLM" = "1" ]; then pip install vllm bitsandbytes; fi
WORKDIR /optbench
VOLUME ["/cache", "/optbench/reports"]
ENTRYPOINT ["optbench"]
CMD ["--help"]
