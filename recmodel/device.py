"""Resolve the compute device once; everything after that is device-agnostic torch."""

from __future__ import annotations

import logging

import torch

log = logging.getLogger(__name__)


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` -> CUDA when a GPU is usable, else CPU (logged either way); ``cuda`` without a GPU is an error."""
    if device == "auto":
        chosen = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        why = torch.cuda.get_device_name(0) if chosen.type == "cuda" else "no CUDA device visible to torch"
        log.info("device=auto resolved to %s (%s)", chosen, why)
        return chosen
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' was requested but torch sees no CUDA device; use device='auto' or 'cpu'")
    if device not in ("cpu", "cuda"):
        raise ValueError(f"unknown device {device!r}; use 'auto', 'cpu' or 'cuda'")
    log.info("device=%s", device)
    return torch.device(device)
