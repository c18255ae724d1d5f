"""What every notebook's checks share: comparing an answer with the expected tensor, and finding
which usual mistake it reproduces (so the message can name it)."""
from __future__ import annotations

from typing import Callable, Sequence

import torch


def close(a, b, atol: float = 1e-5, rtol: float = 1e-4, equal_nan: bool = True) -> bool:
    """Two tensors of the same shape with the same values (in float64, within the tolerances);
    False for anything that is not a tensor."""
    if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)) or a.shape != b.shape:
        return False
    return bool(torch.allclose(a.detach().double(), b.detach().double(), atol=atol, rtol=rtol, equal_nan=equal_nan))


def matching_hint(got, mistakes: Sequence[tuple[Callable[[], torch.Tensor], str]], **tol) -> str:
    """The hint of the first usual mistake whose result the answer reproduces ('' if none).
    ``mistakes`` pairs a function computing the mistake's result with its hint; ``tol`` goes to :func:`close`."""
    for result, hint in mistakes:
        try:
            with torch.no_grad():
                wrong = result()
        except Exception:
            continue
        if close(got, wrong, **tol):
            return f"\n     hint: {hint}"
    return ""
