"""Energy meters. Each channel uses the strongest source that works here, and says which."""

from optbench.registry import Registry

METERS: Registry = Registry("meter", "optbench.meters.base:Meter", "optbench.meters")
METERS.register("nvml", "optbench.meters.nvml:NvmlMeter", aliases=("gpu",),
                summary="NVIDIA GPU energy counter, else NVML power polling (labelled)")
METERS.register("rapl", "optbench.meters.rapl:RaplMeter", aliases=("powercap",),
                summary="CPU package and DRAM energy counters (Linux powercap / RAPL)")
METERS.register("estimate", "optbench.meters.estimate:CpuEstimateMeter", aliases=("cpu-estimate",),
                summary="CPU energy estimated from TDP x process CPU time (labelled estimated)")
