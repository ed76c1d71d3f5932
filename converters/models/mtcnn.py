"""MTCNN's three networks (Zhang et al., 2016, "Joint Face Detection and Alignment using Multi-task
Cascaded Convolutional Networks"), laid out to load facenet-pytorch's ``pnet.pt``/``rnet.pt``/``onet.pt``
state dicts as they are (facenet-pytorch itself pins an old torch and cannot be imported here).

Layer names and shapes follow the state dicts (e.g. ``rnet.pt``: conv1 (28, 3, 3, 3), dense4 (128, 576)).
The weights come from the original Caffe models, which were trained on transposed images; the conv
kernels were transposed when ported, but the flatten before the first dense layer must visit the
(C, W, H) feature map in Caffe's order, hence the ``permute(0, 3, 2, 1)`` in RNet and ONet.

Shape legend: inputs are (N, 3, H, W) float32 RGB scaled as ``(pixel - 127.5) / 128``. PNet is fully
convolutional (H, W >= 12) and returns box regressions (N, 4, h, w) and face probabilities
(N, 2, h, w) with h = ceil((H - 2) / 2) - 4; RNet takes 24x24 crops and ONet 48x48 crops and return
(N, 4) regressions, (N, 2) probabilities, and for ONet (N, 10) landmarks (5 x's then 5 y's, relative).
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["PNet", "RNet", "ONet", "NETS"]


def _flatten_caffe(x: torch.Tensor) -> torch.Tensor:
    return x.permute(0, 3, 2, 1).reshape(x.shape[0], -1)


class PNet(nn.Module):
    """Proposal network: 12x12 receptive field, stride 2; (reg (N,4,h,w), prob (N,2,h,w))."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 10, 3), nn.PReLU(10)
        self.pool1 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv2, self.prelu2 = nn.Conv2d(10, 16, 3), nn.PReLU(16)
        self.conv3, self.prelu3 = nn.Conv2d(16, 32, 3), nn.PReLU(32)
        self.conv4_1 = nn.Conv2d(32, 2, 1)  # face / not face
        self.conv4_2 = nn.Conv2d(32, 4, 1)  # box regression

    def forward(self, x: torch.Tensor):
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.prelu3(self.conv3(self.prelu2(self.conv2(x))))
        return self.conv4_2(x), torch.softmax(self.conv4_1(x), dim=1)


class RNet(nn.Module):
    """Refinement network on 24x24 crops; (reg (N,4), prob (N,2))."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 28, 3), nn.PReLU(28)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2, self.prelu2 = nn.Conv2d(28, 48, 3), nn.PReLU(48)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3, self.prelu3 = nn.Conv2d(48, 64, 2), nn.PReLU(64)
        self.dense4, self.prelu4 = nn.Linear(576, 128), nn.PReLU(128)
        self.dense5_1 = nn.Linear(128, 2)
        self.dense5_2 = nn.Linear(128, 4)

    def forward(self, x: torch.Tensor):
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.prelu3(self.conv3(x))
        x = self.prelu4(self.dense4(_flatten_caffe(x)))
        return self.dense5_2(x), torch.softmax(self.dense5_1(x), dim=1)


class ONet(nn.Module):
    """Output network on 48x48 crops; (reg (N,4), landmarks (N,10), prob (N,2))."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 32, 3), nn.PReLU(32)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2, self.prelu2 = nn.Conv2d(32, 64, 3), nn.PReLU(64)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3, self.prelu3 = nn.Conv2d(64, 64, 3), nn.PReLU(64)
        self.pool3 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv4, self.prelu4 = nn.Conv2d(64, 128, 2), nn.PReLU(128)
        self.dense5, self.prelu5 = nn.Linear(1152, 256), nn.PReLU(256)
        self.dense6_1 = nn.Linear(256, 2)
        self.dense6_2 = nn.Linear(256, 4)
        self.dense6_3 = nn.Linear(256, 10)

    def forward(self, x: torch.Tensor):
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.pool3(self.prelu3(self.conv3(x)))
        x = self.prelu5(self.dense5(_flatten_caffe(self.prelu4(self.conv4(x)))))
        return self.dense6_2(x), self.dense6_3(x), torch.softmax(self.dense6_1(x), dim=1)


# name -> (module class, input side (None: any >= 12), output names in forward order)
NETS = {
    "pnet": (PNet, None, ("reg", "prob")),
    "rnet": (RNet, 24, ("reg", "prob")),
    "onet": (ONet, 48, ("reg", "landmarks", "prob")),
}
