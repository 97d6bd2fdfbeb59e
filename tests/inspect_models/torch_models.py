"""PyTorch AlexNets written the way other people write them, for ``alexnet inspect``'s tests.

Nothing here uses this package's implementations: each model is a third-party port in the
style it comes from (torchvision's source, the d2l books, the seeds, a functional forward,
a custom layer calling ``F.conv2d``). ``CASES`` at the bottom says, per factory, which
registered variant it computes, whether exactly, and otherwise the one convention it uses
instead: ``differs`` maps a spec layer name to a lowercase keyword its fingerprint should
contain. Every factory takes no argument and builds at its variant's default input size.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

#: the paper's LRN (k=2, n=5, alpha=1e-4, beta=0.75) as nn.LocalResponseNorm takes it: that
#: layer divides alpha by the window, so a correct port passes alpha * size
PAPER_LRN = dict(size=5, alpha=1e-4 * 5, beta=0.75, k=2.0)


# --------------------------------------------------------------------------------------------
# torchvision ("One weird trick"), 3x224x224, 1000 classes


class TorchvisionAlexNet(nn.Module):
    """torchvision/models/alexnet.py, as its source writes it."""

    def __init__(self, num_classes: int = 1000, dropout: float = 0.5) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(64, 192, kernel_size=5, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(192, 384, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
        )
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.classifier = nn.Sequential(
            nn.Dropout(p=dropout),
            nn.Linear(256 * 6 * 6, 4096),
            nn.ReLU(inplace=True),
            nn.Dropout(p=dropout),
            nn.Linear(4096, 4096),
            nn.ReLU(inplace=True),
            nn.Linear(4096, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        x = self.avgpool(x)
        x = torch.flatten(x, 1)
        x = self.classifier(x)
        return x


class ChannelsLastFlattenAlexNet(TorchvisionAlexNet):
    """A port from a channels-last framework: the feature map is flattened in H*W*C order,
    so fc6's input rows are those of torchvision permuted."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.avgpool(self.features(x))
        x = x.permute(0, 2, 3, 1).flatten(1)
        return self.classifier(x)


class BGRInputAlexNet(TorchvisionAlexNet):
    """Caffe/OpenCV habit: the input's channels reversed (RGB -> BGR) before conv1."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.flip(1))


def torchvision_alexnet() -> nn.Module:
    return TorchvisionAlexNet()


def torchvision_channels_last_flatten() -> nn.Module:
    return ChannelsLastFlattenAlexNet()


def torchvision_bgr_input() -> nn.Module:
    return BGRInputAlexNet()


def torchvision_avgpool2() -> nn.Module:
    """Average pooling where torchvision's second max pool is."""
    model = TorchvisionAlexNet()
    model.features[5] = nn.AvgPool2d(kernel_size=3, stride=2)
    return model


# --------------------------------------------------------------------------------------------
# d2l (gluonbook / Dive into Deep Learning), 1x224x224, 10 classes


def d2l_sequential(conv1_padding: int = 0, ceil_mode: bool = False) -> nn.Module:
    """The d2l books' ``net = nn.Sequential(...)``. ``conv1_padding``: d2l-en's PyTorch tab
    pads conv1 by 1 where gluonbook and seed 002 do not; ``ceil_mode``: Caffe's rounding."""
    def pool() -> nn.MaxPool2d:
        return nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=ceil_mode)
    # ceil mode and padding 2 change the feature map: pool5 gives 6x6 instead of 5x5
    side = 6 if ceil_mode or conv1_padding >= 2 else 5
    return nn.Sequential(
        nn.Conv2d(1, 96, kernel_size=11, stride=4, padding=conv1_padding), nn.ReLU(), pool(),
        nn.Conv2d(96, 256, kernel_size=5, padding=2), nn.ReLU(), pool(),
        nn.Conv2d(256, 384, kernel_size=3, padding=1), nn.ReLU(),
        nn.Conv2d(384, 384, kernel_size=3, padding=1), nn.ReLU(),
        nn.Conv2d(384, 256, kernel_size=3, padding=1), nn.ReLU(),
        pool(), nn.Flatten(),
        nn.Linear(256 * side * side, 4096), nn.ReLU(), nn.Dropout(p=0.5),
        nn.Linear(4096, 4096), nn.ReLU(), nn.Dropout(p=0.5),
        nn.Linear(4096, 10))


class Seed002AlexNet(nn.Module):
    """Seed 002 (a d2l PyTorch notebook), as written."""

    def __init__(self):
        super(Seed002AlexNet, self).__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(1, 96, 11, 4),
            nn.ReLU(),
            nn.MaxPool2d(3, 2),
            nn.Conv2d(96, 256, 5, 1, 2),
            nn.ReLU(),
            nn.MaxPool2d(3, 2),
            nn.Conv2d(256, 384, 3, 1, 1),
            nn.ReLU(),
            nn.Conv2d(384, 384, 3, 1, 1),
            nn.ReLU(),
            nn.Conv2d(384, 256, 3, 1, 1),
            nn.ReLU(),
            nn.MaxPool2d(3, 2)
        )
        self.fc = nn.Sequential(
            nn.Linear(256 * 5 * 5, 4096),
            nn.ReLU(),
            nn.Dropout(0.5),
            nn.Linear(4096, 4096),
            nn.ReLU(),
            nn.Dropout(0.5),
            nn.Linear(4096, 10),
        )

    def forward(self, img):
        feature = self.conv(img)
        output = self.fc(feature.view(img.shape[0], -1))
        return output


class AlwaysDropoutAlexNet(nn.Module):
    """Seed 002's features with a functional classifier whose ``F.dropout`` calls leave
    ``training`` at its default, True: dropout stays on in eval mode."""

    def __init__(self):
        super().__init__()
        self.conv = Seed002AlexNet().conv
        self.fc6 = nn.Linear(256 * 5 * 5, 4096)
        self.fc7 = nn.Linear(4096, 4096)
        self.fc8 = nn.Linear(4096, 10)

    def forward(self, x):
        x = self.conv(x).flatten(1)
        x = F.dropout(F.relu(self.fc6(x)), 0.5)
        x = F.dropout(F.relu(self.fc7(x)), 0.5)
        return self.fc8(x)


def d2l_seed002() -> nn.Module:
    return Seed002AlexNet()


def d2l_lazy() -> nn.Module:
    """d2l-en's construction: Lazy layers whose shapes exist only after a first forward."""
    return nn.Sequential(
        nn.LazyConv2d(96, kernel_size=11, stride=4), nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.LazyConv2d(256, kernel_size=5, padding=2), nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.LazyConv2d(384, kernel_size=3, padding=1), nn.ReLU(),
        nn.LazyConv2d(384, kernel_size=3, padding=1), nn.ReLU(),
        nn.LazyConv2d(256, kernel_size=3, padding=1), nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2), nn.Flatten(),
        nn.LazyLinear(4096), nn.ReLU(), nn.Dropout(p=0.5),
        nn.LazyLinear(4096), nn.ReLU(), nn.Dropout(p=0.5),
        nn.LazyLinear(10))


def d2l_book_conv1_pad1() -> nn.Module:
    """d2l-en's PyTorch tab pads conv1 by 1 (same 54x54 map, other values)."""
    return d2l_sequential(conv1_padding=1)


def d2l_conv1_pad2() -> nn.Module:
    return d2l_sequential(conv1_padding=2)


def d2l_ceil_mode() -> nn.Module:
    return d2l_sequential(ceil_mode=True)


def d2l_dropout_in_eval() -> nn.Module:
    return AlwaysDropoutAlexNet()


# --------------------------------------------------------------------------------------------
# cifar-small (seed 003), 3x32x32, 10 classes


class Seed003AlexNet(nn.Module):
    """Seed 003, as written."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Sequential(
            nn.Conv2d(3, 64, 5),
            nn.ReLU(True))
        self.max_pool1 = nn.MaxPool2d(3, 2)
        self.conv2 = nn.Sequential(
            nn.Conv2d(64, 64, 5, 1),
            nn.ReLU(True))
        self.max_pool2 = nn.MaxPool2d(3, 2)
        self.fc1 = nn.Sequential(
            nn.Linear(1024, 384),
            nn.ReLU(True))
        self.fc2 = nn.Sequential(
            nn.Linear(384, 192),
            nn.ReLU(True))
        self.fc3 = nn.Linear(192, 10)

    def forward(self, x):
        x = self.conv1(x)
        x = self.max_pool1(x)
        x = self.conv2(x)
        x = self.max_pool2(x)
        x = x.view(x.shape[0], -1)
        x = self.fc1(x)
        x = self.fc2(x)
        x = self.fc3(x)
        return x


def cifar_small_seed003() -> nn.Module:
    return Seed003AlexNet()


class ChannelsLastSeed003(Seed003AlexNet):
    """Seed 003 flattening NHWC, as a port of Keras weights might (fc1 rows in H*W*C order)."""

    def forward(self, x):
        x = self.max_pool2(self.conv2(self.max_pool1(self.conv1(x))))
        return self.fc3(self.fc2(self.fc1(x.permute(0, 2, 3, 1).reshape(x.shape[0], -1))))


def cifar_small_channels_last_flatten() -> nn.Module:
    return ChannelsLastSeed003()


def cifar_small_conv1_without_bias() -> nn.Module:
    """bias=False on conv1: the canonical bias has nowhere to go."""
    net = Seed003AlexNet()
    net.conv1[0] = nn.Conv2d(3, 64, 5, bias=False)
    return net


# --------------------------------------------------------------------------------------------
# paper (Krizhevsky et al. 2012, Caffe's layer order), 3x227x227, 1000 classes


class FunctionalPaperAlexNet(nn.Module):
    """The paper with a functional forward, its own attribute names and grouped convs."""

    def __init__(self, num_classes=1000):
        super().__init__()
        self.c1 = nn.Conv2d(3, 96, 11, stride=4)
        self.c2 = nn.Conv2d(96, 256, 5, padding=2, groups=2)
        self.c3 = nn.Conv2d(256, 384, 3, padding=1)
        self.c4 = nn.Conv2d(384, 384, 3, padding=1, groups=2)
        self.c5 = nn.Conv2d(384, 256, 3, padding=1, groups=2)
        self.f6 = nn.Linear(9216, 4096)
        self.f7 = nn.Linear(4096, 4096)
        self.f8 = nn.Linear(4096, num_classes)

    def forward(self, x):
        x = F.max_pool2d(F.local_response_norm(F.relu(self.c1(x)), **PAPER_LRN), 3, 2)
        x = F.max_pool2d(F.local_response_norm(F.relu(self.c2(x)), **PAPER_LRN), 3, 2)
        x = F.relu(self.c3(x))
        x = F.relu(self.c4(x))
        x = F.max_pool2d(F.relu(self.c5(x)), 3, 2)
        x = x.view(x.size(0), -1)
        x = F.dropout(F.relu(self.f6(x)), 0.5, training=self.training)
        x = F.dropout(F.relu(self.f7(x)), 0.5, training=self.training)
        return self.f8(x)


class GroupedConv(nn.Module):
    """A hand-written convolution layer (parameters ``w``/``b``, ``F.conv2d``), as ports of
    cuda-convnet's two-tower layers write them."""

    def __init__(self, cin, cout, k, stride=1, padding=0, groups=1):
        super().__init__()
        self.w = nn.Parameter(torch.randn(cout, cin // groups, k, k) * 0.01)
        self.b = nn.Parameter(torch.zeros(cout))
        self.stride, self.padding, self.groups = stride, padding, groups

    def forward(self, x):
        return F.conv2d(x, self.w, self.b, self.stride, self.padding, 1, self.groups)


def paper_sequential(*, groups: int = 2, lrn: dict = PAPER_LRN, pool1_zero_pad: bool = False,
                     conv=nn.Conv2d) -> nn.Module:
    """The paper as a named ``nn.Sequential``: ``groups`` of conv2/4/5, the keyword
    arguments of both ``nn.LocalResponseNorm``, a ``nn.ZeroPad2d(1)`` before pool1 (ceil
    mode emulated by padding), ``conv`` the convolution class."""
    pool1 = [("pad1", nn.ZeroPad2d(1))] if pool1_zero_pad else []
    return nn.Sequential(OrderedDict([
        ("conv1", conv(3, 96, 11, stride=4)), ("relu1", nn.ReLU(inplace=True)),
        ("norm1", nn.LocalResponseNorm(**lrn)),
        *pool1, ("pool1", nn.MaxPool2d(3, 2)),
        ("conv2", conv(96, 256, 5, padding=2, groups=groups)), ("relu2", nn.ReLU(inplace=True)),
        ("norm2", nn.LocalResponseNorm(**lrn)), ("pool2", nn.MaxPool2d(3, 2)),
        ("conv3", conv(256, 384, 3, padding=1)), ("relu3", nn.ReLU(inplace=True)),
        ("conv4", conv(384, 384, 3, padding=1, groups=groups)), ("relu4", nn.ReLU(inplace=True)),
        ("conv5", conv(384, 256, 3, padding=1, groups=groups)), ("relu5", nn.ReLU(inplace=True)),
        ("pool5", nn.MaxPool2d(3, 2)),
        ("flatten", nn.Flatten()),
        ("fc6", nn.Linear(256 * 6 * 6, 4096)), ("relu6", nn.ReLU(inplace=True)),
        ("drop6", nn.Dropout(0.5)),
        ("fc7", nn.Linear(4096, 4096)), ("relu7", nn.ReLU(inplace=True)),
        ("drop7", nn.Dropout(0.5)),
        ("fc8", nn.Linear(4096, 1000)),
    ]))


def paper_functional() -> nn.Module:
    return FunctionalPaperAlexNet()


def paper_ungrouped() -> nn.Module:
    """groups=1 on conv2/4/5: a superset of the paper (its kernels hold the grouped ones
    block-diagonally)."""
    return paper_sequential(groups=1)


def paper_custom_conv() -> nn.Module:
    return paper_sequential(conv=GroupedConv)


def paper_lrn_alpha_unconverted() -> nn.Module:
    """The paper's alpha handed to nn.LocalResponseNorm as it is: alpha/5 in effect."""
    return paper_sequential(lrn=dict(size=5, alpha=1e-4, beta=0.75, k=2.0))


def paper_lrn_caffe_k1() -> nn.Module:
    """Caffe's LRN constant k=1 where the paper has 2."""
    return paper_sequential(lrn={**PAPER_LRN, "k": 1.0})


def paper_lrn_window11() -> nn.Module:
    """TensorFlow's depth_radius=5 read as the window: 11 channels (alpha still right)."""
    return paper_sequential(lrn={**PAPER_LRN, "size": 11, "alpha": 1e-4 * 11})


def paper_lrn_beta() -> nn.Module:
    return paper_sequential(lrn={**PAPER_LRN, "beta": 0.5})


def paper_pool1_zero_pad() -> nn.Module:
    """Ceil mode emulated by a symmetric zero pad before a floor pool1 (55 -> 28, not 27)."""
    return paper_sequential(pool1_zero_pad=True)


def _exact(variant: str) -> dict:
    return dict(variant=variant, exact=True, differs={})


def _one_convention(variant: str, word: str, *layers: str, **extra) -> dict:
    """A model that computes ``variant`` but for one convention, seen at ``layers``."""
    return dict(variant=variant, exact=False, differs={layer: word for layer in layers}, **extra)


#: factory name -> what inspecting it should find: the variant, whether it computes it
#: exactly, and per differing spec layer a keyword its fingerprint should contain;
#: input_shape, where given: the (C, H, W) to inspect at
CASES = {
    "torchvision_alexnet": _exact("torchvision"),
    "torchvision_channels_last_flatten": _exact("torchvision"),
    "torchvision_bgr_input": _one_convention("torchvision", "channel", "conv1"),
    "torchvision_avgpool2": _one_convention("torchvision", "average", "pool2"),
    "d2l_sequential": _exact("d2l"),
    "d2l_seed002": _exact("d2l"),
    "d2l_lazy": _exact("d2l"),
    "d2l_book_conv1_pad1": _one_convention("d2l", "pad", "conv1"),
    # fc6 is 9216 wide here (pool5 gives 6x6): a consequence, not a second convention
    "d2l_conv1_pad2": _one_convention("d2l", "pad", "conv1"),
    # ceil_mode on all three pools; at 224 only pool1 rounds differently (54 -> 27, not 26),
    # and fc6 is 9216 wide as a consequence. At 227 ceil and floor agree everywhere, and this
    # model then computes d2l-at-227 exactly
    "d2l_ceil_mode": _one_convention("d2l", "ceil", "pool1", input_shape=(1, 224, 224)),
    "d2l_dropout_in_eval": _one_convention("d2l", "dropout", "drop6", "drop7"),
    "cifar_small_seed003": _exact("cifar-small"),
    "cifar_small_channels_last_flatten": _exact("cifar-small"),
    "cifar_small_conv1_without_bias": _one_convention("cifar-small", "bias", "conv1"),
    "paper_functional": _exact("paper"),
    "paper_ungrouped": _exact("paper"),
    "paper_custom_conv": _exact("paper"),
    "paper_lrn_alpha_unconverted": _one_convention("paper", "alpha", "norm1", "norm2"),
    "paper_lrn_caffe_k1": _one_convention("paper", "lrn k", "norm1", "norm2"),
    "paper_lrn_window11": _one_convention("paper", "window", "norm1", "norm2"),
    "paper_lrn_beta": _one_convention("paper", "beta", "norm1", "norm2"),
    "paper_pool1_zero_pad": _one_convention("paper", "pad", "pool1"),
}
