"""Workloads: the data a run is judged on, its quality metric and its sample unit."""

from optbench.registry import Registry

WORKLOADS: Registry = Registry("workload", "optbench.workloads.base:Workload", "optbench.workloads")
WORKLOADS.register("vision", "optbench.workloads.vision:VisionClassification",
                   aliases=("image-classification",),
                   summary="image classification: mnist, imagefolder:<path>, synthetic")
WORKLOADS.register("text", "optbench.workloads.text:TextGeneration",
                   aliases=("text-generation", "llm"),
                   summary="text generation: pydocs, textfile:<path>; perplexity, TTFT/TPOT")
