"""The device a run uses, and the memory-aware default of the DDS batch size."""

from __future__ import annotations

import os

import torch

CPU_DDS_BATCH = 64
# Measured: 12 ADM-256 copies took 13.3 GB (issue 12), about 1.1 GB per 256x256 copy with the
# explainers' backward passes; scaled by the UNet's pixel count, with half the free memory kept spare.
BYTES_PER_COPY_256 = 1.2e9


def resolve_device(name: str | None) -> torch.device:
    """`name`, or CUDA when available (under torchrun the rank's own GPU, LOCAL_RANK), else CPU;
    raises a ValueError if `name` is not available here."""
    if name is None:
        if not torch.cuda.is_available():
            return torch.device("cpu")
        local = os.environ.get("LOCAL_RANK")
        return torch.device("cuda", int(local) % torch.cuda.device_count()) if local else torch.device("cuda")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} asked for, but torch sees no CUDA device here; use --device cpu")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ValueError(f"device {name!r}: only {torch.cuda.device_count()} CUDA device(s) here")
    return device


def dds_batch_for(device: torch.device, sample_size: int | None, given: int | None = None) -> int:
    """Images per UNet / explainer batch inside DDS: `given`, else 64 on CPU (or without a denoiser),
    else as many copies as half the free CUDA memory holds at BYTES_PER_COPY_256 per 256x256 copy (1-64)."""
    if given is not None:
        return given
    if device.type != "cuda" or sample_size is None:
        return CPU_DDS_BATCH
    free, _ = torch.cuda.mem_get_info(device)
    per_copy = BYTES_PER_COPY_256 * (sample_size / 256) ** 2
    return int(max(1, min(CPU_DDS_BATCH, 0.5 * free // per_copy)))


def device_identity(device: torch.device) -> str:
    """The device as the run identity records it: its type and, for CUDA, the GPU model (not its index,
    so shards of one run on several identical GPUs share an identity)."""
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return device.type


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo), or '' where it is not known."""
    import re
    from pathlib import Path

    cpuinfo = Path("/proc/cpuinfo")
    found = re.search(r"^model name\s*:\s*(.+)$", cpuinfo.read_text(), re.M) if cpuinfo.is_file() else None
    return found.group(1).strip() if found else ""
