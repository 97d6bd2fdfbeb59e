"""AlexNets written in MXNet Gluon the way other people write them, for ``alexnet inspect``.

Each factory returns an uninitialized Gluon ``Block`` (deferred shapes, as ports leave them)
and uses nothing of this package. ``CASES`` says what the inspection should find: the variant,
whether the model computes it exactly, and for each convention carrier (a port that computes
one thing the spec does not) the spec layers that differ and a word their fingerprint holds.
"""

import numpy as np

if not hasattr(np, "bool"):
    np.bool = bool  # mxnet 1.9.1 reads np.bool, gone from numpy 1.24 to 1.26

import mxnet as mx  # noqa: E402
from mxnet.gluon import nn  # noqa: E402
from mxnet.gluon.model_zoo import vision  # noqa: E402


def model_zoo_alexnet():
    """Gluon's model zoo AlexNet (torchvision's layers, without the adaptive pool)."""
    return vision.alexnet(classes=1000, pretrained=False)


def d2l_alexnet(conv1_padding=0, ceil=False, dropout=nn.Dropout):
    """Dive into Deep Learning's AlexNet for Fashion-MNIST (seed 001): no Flatten, the first
    Dense flattens its input itself. The arguments make the convention carriers below."""
    net = nn.Sequential()
    net.add(
        nn.Conv2D(96, kernel_size=11, strides=4, padding=conv1_padding, activation="relu"),
        nn.MaxPool2D(pool_size=3, strides=2, ceil_mode=ceil),
        nn.Conv2D(256, kernel_size=5, padding=2, activation="relu"),
        nn.MaxPool2D(pool_size=3, strides=2, ceil_mode=ceil),
        nn.Conv2D(384, kernel_size=3, padding=1, activation="relu"),
        nn.Conv2D(384, kernel_size=3, padding=1, activation="relu"),
        nn.Conv2D(256, kernel_size=3, padding=1, activation="relu"),
        nn.MaxPool2D(pool_size=3, strides=2, ceil_mode=ceil),
        nn.Dense(4096, activation="relu"),
        dropout(0.5),
        nn.Dense(4096, activation="relu"),
        dropout(0.5),
        nn.Dense(10),
    )
    return net


def seed000_cifar():
    """Seed 000's CIFAR-10 AlexNet, ReLU on the logits included."""
    net = nn.Sequential()
    with net.name_scope():
        net.add(nn.Conv2D(96, kernel_size=(11, 11), strides=(4, 4), activation="relu"))
        net.add(nn.MaxPool2D(pool_size=(3, 3), strides=(2, 2)))
        net.add(nn.Conv2D(256, kernel_size=(5, 5), activation="relu"))
        net.add(nn.MaxPool2D(pool_size=(3, 3), strides=(2, 2)))
        net.add(nn.Conv2D(384, kernel_size=(3, 3), activation="relu"))
        net.add(nn.Conv2D(384, kernel_size=(3, 3), activation="relu"))
        net.add(nn.Conv2D(256, kernel_size=(3, 3), activation="relu"))
        net.add(nn.Flatten())
        net.add(nn.Dense(4096, activation="relu"))
        net.add(nn.Dense(4096, activation="relu"))
        net.add(nn.Dense(10, activation="relu"))
    return net


class LRN(nn.HybridBlock):
    """Cross-channel LRN with MXNet's operator, which divides ``alpha`` by ``nsize``."""

    def __init__(self, alpha, beta=0.75, knorm=2.0, nsize=5, **kwargs):
        super().__init__(**kwargs)
        self.alpha, self.beta, self.knorm, self.nsize = alpha, beta, knorm, nsize

    def hybrid_forward(self, F, x):
        return F.LRN(x, alpha=self.alpha, beta=self.beta, knorm=self.knorm, nsize=self.nsize)


class ToBGR(nn.HybridBlock):
    """Reverses the channel axis: RGB input for weights trained on Caffe's BGR."""

    def hybrid_forward(self, F, x):
        return F.reverse(x, axis=1)


class KrizhevskyNet(nn.HybridBlock):
    """The paper's two-tower AlexNet as one tower with grouped convolutions, ReLUs fused into
    the convolutions, LRN with the paper's constants (``alpha`` times ``nsize`` for MXNet)."""

    def __init__(self, classes=1000, lrn_alpha=1e-4 * 5, lrn_k=2.0, bgr=False, **kwargs):
        super().__init__(**kwargs)
        with self.name_scope():
            self.features = nn.HybridSequential()
            if bgr:
                self.features.add(ToBGR())
            self.features.add(
                nn.Conv2D(96, 11, strides=4, activation="relu"),
                LRN(lrn_alpha, knorm=lrn_k),
                nn.MaxPool2D(3, 2),
                nn.Conv2D(256, 5, padding=2, groups=2, activation="relu"),
                LRN(lrn_alpha, knorm=lrn_k),
                nn.MaxPool2D(3, 2),
                nn.Conv2D(384, 3, padding=1, activation="relu"),
                nn.Conv2D(384, 3, padding=1, groups=2, activation="relu"),
                nn.Conv2D(256, 3, padding=1, groups=2, activation="relu"),
                nn.MaxPool2D(3, 2),
            )
            self.classifier = nn.HybridSequential()
            self.classifier.add(
                nn.Flatten(),
                nn.Dense(4096, activation="relu"), nn.Dropout(0.5),
                nn.Dense(4096, activation="relu"), nn.Dropout(0.5),
                nn.Dense(classes),
            )

    def hybrid_forward(self, F, x):
        return self.classifier(self.features(x))


def krizhevsky_alexnet():
    return KrizhevskyNet()


# --- convention carriers: each computes one thing the spec does not ---------------------

def lrn_alpha_unconverted():
    """The paper's alpha=1e-4 given to F.LRN as it is: alpha/5 in effect."""
    return KrizhevskyNet(lrn_alpha=1e-4)


def lrn_caffe_k():
    """Caffe's LRN k=1 where the paper has k=2."""
    return KrizhevskyNet(lrn_k=1.0)


def bgr_alexnet():
    """The input's channels reversed before conv1."""
    return KrizhevskyNet(bgr=True)


def d2l_conv1_padding():
    """conv1 padded by 2 (as torchvision's) where d2l has none."""
    return d2l_alexnet(conv1_padding=2)


def d2l_ceil_pooling():
    """Caffe's ceil rounding, ceil_mode (MXNet's pooling_convention='full'): pool1 gives
    27x27 at 224, not 26."""
    return d2l_alexnet(ceil=True)


class MCDropout(nn.Block):
    """Monte Carlo dropout: drops at inference too."""

    def __init__(self, rate, **kwargs):
        super().__init__(**kwargs)
        self.rate = rate

    def forward(self, x):
        return mx.nd.Dropout(x, p=self.rate, mode="always")


def d2l_mc_dropout():
    """Dropout active at inference."""
    return d2l_alexnet(dropout=MCDropout)


# variant: what the inspection should find; exact: whether the model computes it; differs:
# spec layer -> a word its fingerprint should hold; input_shape, where given: the (C, H, W)
# to inspect at (at d2l's other sizes, e.g. 227, ceil and floor pooling agree)
CASES = {
    "model_zoo_alexnet": dict(variant="torchvision", exact=True, differs={}),
    "d2l_alexnet": dict(variant="d2l", exact=True, differs={}),
    "seed000_cifar": dict(variant="gluon-cifar", exact=True, differs={}),
    "krizhevsky_alexnet": dict(variant="paper", exact=True, differs={}),
    "lrn_alpha_unconverted": dict(variant="paper", exact=False,
                                  differs={"norm1": "alpha", "norm2": "alpha"}),
    "lrn_caffe_k": dict(variant="paper", exact=False, differs={"norm1": "lrn k", "norm2": "lrn k"}),
    "bgr_alexnet": dict(variant="paper", exact=False, differs={"conv1": "channel"}),
    "d2l_conv1_padding": dict(variant="d2l", exact=False, differs={"conv1": "pad"}),
    "d2l_ceil_pooling": dict(variant="d2l", exact=False, differs={"pool1": "ceil"},
                             input_shape=(1, 224, 224)),
    "d2l_mc_dropout": dict(variant="d2l", exact=False,
                           differs={"drop6": "dropout", "drop7": "dropout"}),
}
