"""Energy meters. Each channel uses the strongest source that works here, and says which."""

from optbench.registry import Registry

METERS: Registry = Registry("meter", "optbench.meters.base:Meter", "optbench.meters")
METERS.register("estimate", "optbench.meters.estimate:CpuEstimateMeter", aliases=("cpu-estimate",),
                summary="CPU energy estimated from TDP x process CPU time (labelled estimated)")
