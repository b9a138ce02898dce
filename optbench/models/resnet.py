"""ResNet-50 with torchvision's state_dict layout, defined here.

The definition lives in the project (rather than importing torchvision) for two reasons:
torchvision from the registry does not import with the CPU torch wheel, and torchvision's
Bottleneck reuses one ReLU module three times, which torchao's pt2e int8 quantizer rejects.
ReLUs carry no parameters, so the keys and shapes are exactly torchvision's: its
checkpoints (and timm's resnet50 weights, which share the layout) load unchanged.

Weights, in order: the `weights` file a user gives; torchvision's published ImageNet
weights (the card's `checkpoints:`) in torch.hub's cache ($TORCH_HOME/hub/checkpoints/
resnet50-0676ba61.pth or -11ad3fa6.pth), downloaded there first when missing and the network
allows (models/hub.py: sha256 checked, in the parent before a sweep); else a seeded random
init, announced in one line and recorded on the run, so quality becomes agreement with the
fp32 reference. The run records the weights' description, file and sha256.

A freshly initialised network has BatchNorm running statistics of (0, 1), so in eval mode
its activations grow through the 16 residual blocks until every input yields the same
class: agreement with the reference would then be 1.0 whatever a variant does, and int8
calibration would see unrealistic ranges. Random weights therefore get a data-dependent
init on seeded synthetic images (disjoint from evaluation data): BatchNorm statistics are
re-estimated, and the classifier bias centres the logits, so predictions depend on the
input (measured: 1 distinct class of 64 before, about 19 after).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from optbench.artifact import ModelArtifact
from optbench.models import ModelCard, hub
from optbench.models.torchnet import save_state, torch_artifact

INIT_VERSION = 1  # bump when data_dependent_init changes, so cached weights are rebuilt


def _torch_modules() -> Any:
    import torch.nn as nn

    class Bottleneck(nn.Module):
        expansion = 4

        def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: Any = None):
            super().__init__()
            self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(planes)
            self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
            self.bn2 = nn.BatchNorm2d(planes)
            self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
            self.bn3 = nn.BatchNorm2d(planes * 4)
            self.relu1, self.relu2, self.relu3 = nn.ReLU(), nn.ReLU(), nn.ReLU()
            self.downsample = downsample

        def forward(self, x: Any) -> Any:
            identity = x if self.downsample is None else self.downsample(x)
            out = self.relu1(self.bn1(self.conv1(x)))
            out = self.relu2(self.bn2(self.conv2(out)))
            out = self.bn3(self.conv3(out))
            return self.relu3(out + identity)

    class ResNet(nn.Module):
        def __init__(self, layers: tuple[int, ...], num_classes: int = 1000, width: int = 64):
            super().__init__()
            self.inplanes = width
            self.conv1 = nn.Conv2d(3, width, 7, stride=2, padding=3, bias=False)
            self.bn1 = nn.BatchNorm2d(width)
            self.relu = nn.ReLU()
            self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
            self.layer1 = self._make_layer(width, layers[0])
            self.layer2 = self._make_layer(width * 2, layers[1], stride=2)
            self.layer3 = self._make_layer(width * 4, layers[2], stride=2)
            self.layer4 = self._make_layer(width * 8, layers[3], stride=2)
            self.avgpool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(width * 8 * 4, num_classes)
            for m in self.modules():
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                elif isinstance(m, nn.BatchNorm2d):
                    nn.init.ones_(m.weight)
                    nn.init.zeros_(m.bias)

        def _make_layer(self, planes: int, blocks: int, stride: int = 1) -> Any:
            downsample = None
            if stride != 1 or self.inplanes != planes * 4:
                downsample = nn.Sequential(
                    nn.Conv2d(self.inplanes, planes * 4, 1, stride=stride, bias=False),
                    nn.BatchNorm2d(planes * 4),
                )
            layers = [Bottleneck(self.inplanes, planes, stride, downsample)]
            self.inplanes = planes * 4
            layers += [Bottleneck(self.inplanes, planes) for _ in range(1, blocks)]
            return nn.Sequential(*layers)

        def forward(self, x: Any) -> Any:
            x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
            x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
            return self.fc(self.avgpool(x).flatten(1))

    return ResNet


def resnet50(num_classes: int = 1000, width: int = 64) -> Any:
    return _torch_modules()((3, 4, 6, 3), num_classes, width)


def load_state(path: Path) -> dict[str, Any]:
    import torch

    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    state = torch.load(path, map_location="cpu", weights_only=True)
    return state.get("state_dict", state) if isinstance(state, dict) else state


def data_dependent_init(module: Any, shape: tuple[int, ...], seed: int, n: int = 64) -> None:
    """Re-estimate BatchNorm statistics and centre the classifier's logits on seeded images."""
    import torch

    from optbench.workloads.datasets import synthetic

    images = torch.from_numpy(synthetic(shape, n, seed))
    for m in module.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None  # cumulative average over all batches
    features: list[Any] = []
    with torch.no_grad():
        module.train()
        for batch in images.split(16):
            module(batch)
        module.eval()
        hook = module.fc.register_forward_hook(lambda mod, args, out: features.append(args[0]))
        module(images)
        hook.remove()
        module.fc.bias.copy_(-(module.fc.weight @ torch.cat(features).mean(0)))


def build_resnet50(card: ModelCard, weights: str | None, cache: Path) -> ModelArtifact:
    import torch

    seed = int(card.options.get("seed", 0))
    torch.manual_seed(seed)
    module = resnet50(card.num_outputs)
    if weights:
        path: Path | None = Path(weights)
        reason = ""
    else:  # in a worker this only reads the cache: the parent downloaded (check_model)
        found = hub.locate(card.checkpoints, fetch=True)
        path, reason = found.path, found.reason
    if path is not None:
        # a published file is checked against the sha256 prefix in its name
        digest = hub.verify(path) if path.name in card.checkpoints else hub.sha256_file(path)
        module.load_state_dict(load_state(path), strict=True)
        source = card.checkpoints.get(path.name, "user-supplied weights")
        return torch_artifact(card, module, f"{source}: {path} (sha256 {digest[:16]})", True,
                              {"weights_file": str(path), "weights_sha256": digest})
    cached = cache / "models" / f"resnet50-random-seed{seed}-ddi{INIT_VERSION}.pt"
    if cached.is_file():
        module.load_state_dict(torch.load(cached, map_location="cpu", weights_only=True))
    else:
        data_dependent_init(module, card.input_shape, seed + 1000)
        save_state(module, cached)
    description = (f"random init (seed {seed}; BatchNorm statistics and classifier bias set "
                   "on seeded synthetic images): no weights given and none in torch.hub's "
                   "cache")  # the same on every machine; why not is the notice's business
    what = next(iter(card.checkpoints.values()), "trained weights")
    hub.notice_random_init(card.name, what, reason)
    return torch_artifact(card, module, description, False)


def student(card: ModelCard, width: float) -> Any:
    """A narrower ResNet-50 for distillation: `width` x the channels of every stage."""
    return resnet50(card.num_outputs, max(8, round(64 * width)))
