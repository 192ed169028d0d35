"""Randomised torch weights for the equality tests against torchvision and timm.

This file is run as the first part of the tests' torch child scripts (``SOURCE``: torchvision
crashes when imported after TensorFlow, so the reference models run in a process of their own),
and imports nothing but torch. ``randomise`` draws every BatchNorm's statistics and affine
parameters and every bias away from their initial values, so that a mis-paired or mis-ordered
weight, a BatchNorm epsilon or a missing bias shows in the outputs.
"""

import torch


def randomise(model, gen):
    """BatchNorm running mean U(-0.5, 0.5), variance U(0.5, 1.5), gamma U(0.5, 1.5), beta
    U(-0.5, 0.5); convolution and linear biases U(-0.1, 0.1); drawn from ``gen``."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.running_mean.uniform_(-0.5, 0.5, generator=gen)
                m.running_var.uniform_(0.5, 1.5, generator=gen)
                m.weight.uniform_(0.5, 1.5, generator=gen)
                m.bias.uniform_(-0.5, 0.5, generator=gen)
                m.num_batches_tracked.fill_(7)
            elif isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)) and m.bias is not None:
                m.bias.uniform_(-0.1, 0.1, generator=gen)
