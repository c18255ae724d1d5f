"""Exercise checks of notebook 05 (DCGAN): what a student's generator block must do."""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from .. import gan


def generator_block_checks() -> list[Callable[[Callable], None]]:
    """Properties of a student's ``generator_block(in_channels, out_channels)``."""

    def structure_and_output(fn):
        torch.manual_seed(0)
        want = gan.generator_block(8, 4)
        got = fn(8, 4)
        assert isinstance(got, nn.Module), f"generator_block should return an nn.Module, got {type(got).__name__}"
        kinds = [type(m).__name__ for m in got.modules() if not isinstance(m, nn.Sequential)]
        assert kinds == ["ConvTranspose2d", "BatchNorm2d", "ReLU"], (
            f"expected the layers ConvTranspose2d → BatchNorm2d → ReLU, got {' → '.join(kinds)}")
        got_keys, want_values = list(got.state_dict()), list(want.state_dict().values())
        try:   # by position, not by name: an nn.Sequential built from a named OrderedDict is just as correct
            if len(got_keys) != len(want_values):
                raise RuntimeError(f"{len(got_keys)} tensors in the state dict, expected {len(want_values)}")
            got.load_state_dict(dict(zip(got_keys, want_values)))
        except RuntimeError as err:
            raise AssertionError(f"the layers' parameters do not match ConvTranspose2d(8, 4, kernel_size=4, stride=2, "
                                 f"padding=1, bias=False) → BatchNorm2d(4): {str(err).splitlines()[0]}") from None
        x = torch.randn(2, 8, 7, 7)
        y_got, y_want = got(x), want(x)
        assert y_got.shape == y_want.shape, (f"a (2, 8, 7, 7) input should give {tuple(y_want.shape)} "
                                             f"(twice the size), got {tuple(y_got.shape)}: use stride=2, padding=1")
        assert torch.allclose(y_got, y_want, atol=1e-5), "same weights, different output: check kernel_size=4, stride=2, padding=1"

    return [structure_and_output]
