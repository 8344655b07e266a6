"""Network 2: a torchvision DenseNet that embeds depth views into the shared descriptor space.

Input: normalised depth views ``(N, S, S)`` or ``(N, 1, S, S)`` float32
(:func:`scene3d_ros.world.depth_views.object_depth_view`). The DenseNet's first convolution takes
one channel, and its classifier is replaced by a regressor
``Linear(num_features, hidden)-ReLU -> SharedDescriptorTail`` whose tail is the **same module
instance** as the end of network 1's descriptor head (shared weights).
"""

from __future__ import annotations

from torch import Tensor, nn
from torchvision.models import DenseNet

from scene3d_ros.model.pose_heads import SharedDescriptorTail


class DepthEncoder(DenseNet):
    """DenseNet(growth_rate, block_config, num_init_features, bn_size) on 1-channel depth views,
    producing ``(N, tail dim)`` descriptors through the shared ``tail``."""

    def __init__(self, tail: SharedDescriptorTail, growth_rate: int = 16, block_config: tuple[int, ...] = (4, 4, 4),
                 num_init_features: int = 32, bn_size: int = 4) -> None:
        super().__init__(growth_rate=growth_rate, block_config=tuple(block_config),
                         num_init_features=num_init_features, bn_size=bn_size, drop_rate=0.0, num_classes=1)
        conv0 = nn.Conv2d(1, num_init_features, kernel_size=7, stride=2, padding=3, bias=False)
        nn.init.kaiming_normal_(conv0.weight)
        self.features.conv0 = conv0
        self.num_features = self.classifier.in_features
        hidden = tail[0].in_features
        # DenseNet.forward: features -> relu -> global average pool -> flatten -> classifier
        self.classifier = nn.Sequential(nn.Linear(self.num_features, hidden), nn.ReLU(inplace=True), tail)

    @property
    def tail(self) -> SharedDescriptorTail:
        """The shared last layers (also ``roi_heads.descriptor_head.tail`` of network 1)."""
        return self.classifier[2]

    def forward(self, views: Tensor) -> Tensor:
        if views.dim() == 3:
            views = views.unsqueeze(1)
        if views.dim() != 4 or views.shape[1] != 1:
            raise ValueError(f"depth views must be (N, S, S) or (N, 1, S, S), got {tuple(views.shape)}")
        return super().forward(views)
