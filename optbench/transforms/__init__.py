"""Transforms: steps that change a model or how a runtime executes it."""

from optbench.registry import Registry

TRANSFORMS: Registry = Registry(
    "transform", "optbench.transforms.base:Transform", "optbench.transforms"
)
TRANSFORMS.register("distill", "optbench.transforms.distill:Distill", aliases=("kd",),
                    summary="knowledge distillation into a narrower student (model card builder)")
TRANSFORMS.register("prune", "optbench.transforms.prune:Prune",
                    summary="magnitude pruning: unstructured, or structured (channels removed)")
TRANSFORMS.register("qat", "optbench.transforms.qat:Qat",
                    summary="quantization-aware training to int8 (torchao pt2e), Q/DQ for all")
TRANSFORMS.register("int8", "optbench.transforms.precision:Int8", aliases=("ptq", "ptq-int8"),
                    summary="post-training static int8 through each runtime's own toolchain")
TRANSFORMS.register("fp16", "optbench.transforms.precision:Fp16", aliases=("half",),
                    summary="half precision where the backend runs it natively")
TRANSFORMS.register("bf16", "optbench.transforms.precision:Bf16",
                    summary="bfloat16 where the backend runs it natively")
TRANSFORMS.register("woq", "optbench.transforms.weight_only:WeightOnly",
                    aliases=("weight-only",),
                    summary="language models: weight-only int8/int4 (NNCF, torchao, ORT, vLLM)")
TRANSFORMS.register("refit", "optbench.transforms.refit:Refit",
                    summary="fit again from scratch under a training-energy budget (classic, CNN)")
