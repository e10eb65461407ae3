"""Run identity: everything that determines a row, recorded in the store and checked on resume.

The identity holds the validated, normalised configuration (`ExperimentConfig.identity_dict`), the
identity of every input file (path, size and a content fingerprint), the harness version and git
commit, the torch version, the device, the torch thread count and the DDS batch size. A run that
resumes a store with another identity is refused with a message naming each difference.

Fingerprints are cheap for multi-GB files: SHA-256 over the size and FINGERPRINT_BLOCKS blocks of
64 KiB spread evenly through the file (first and last included). A folder's fingerprint covers the
sorted list of its files with their sizes, and the content blocks of at most FOLDER_FILES files
spread evenly through that list (every file of a model folder; a sample of an ImageNet folder).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path
from typing import Any

import torch

from harness import __version__
from harness.runner.config import ExperimentConfig
from harness.runner.devices import device_identity

BLOCK = 64 * 1024
FINGERPRINT_BLOCKS = 16
FOLDER_FILES = 256


def file_fingerprint(path: Path) -> str:
    """SHA-256 (hex, 16 chars) of the size and FINGERPRINT_BLOCKS evenly spread 64 KiB blocks."""
    size = path.stat().st_size
    digest = hashlib.sha256(str(size).encode())
    with path.open("rb") as f:
        span = max(size - BLOCK, 0)
        offsets = sorted({span * i // max(FINGERPRINT_BLOCKS - 1, 1) for i in range(FINGERPRINT_BLOCKS)})
        for offset in offsets:
            f.seek(offset)
            digest.update(f.read(BLOCK))
    return digest.hexdigest()[:16]


def path_identity(path: str | os.PathLike | None) -> dict[str, Any] | None:
    """{path, size, fingerprint} of a file or folder (None for None); a missing path is recorded as such."""
    if path is None:
        return None
    path = Path(path).resolve()
    if path.is_file():
        return {"path": str(path), "size": path.stat().st_size, "fingerprint": file_fingerprint(path)}
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file())
        digest = hashlib.sha256()
        total = 0
        for p in files:
            size = p.stat().st_size
            total += size
            digest.update(f"{p.relative_to(path)}\0{size}\n".encode())
        step = max(1, len(files) // FOLDER_FILES)
        for p in files[::step][:FOLDER_FILES]:
            digest.update(file_fingerprint(p).encode())
        return {"path": str(path), "files": len(files), "size": total, "fingerprint": digest.hexdigest()[:16]}
    return {"path": str(path), "missing": True}


def input_paths(cfg: ExperimentConfig) -> dict[str, str | None]:
    """The files behind the classifier weights, the dataset and the denoiser (FVIT_* variables resolved)."""
    from harness.data.registry import SEG_ENV_VAR, VAL_ENV_VAR
    from harness.models.mini import MINI_DENOISER_DIR, MINI_VIT_DIR
    from harness.models.zoo import PAPER_MODELS

    if cfg.model in PAPER_MODELS:
        weights = cfg.weights or os.environ.get(PAPER_MODELS[cfg.model][1]) or None
    else:
        weights = cfg.weights or str(MINI_VIT_DIR)
    env = {"imagenet-seg": SEG_ENV_VAR, "imagenet-val": VAL_ENV_VAR, "imagenet-val-re8": VAL_ENV_VAR}.get(cfg.dataset)
    dataset = cfg.dataset_root or (os.environ.get(env, "").strip() or None if env else None)
    denoiser = None
    if cfg.dds:
        denoiser = cfg.denoiser or (str(MINI_DENOISER_DIR) if cfg.model == "mini-vit" else None)
    return {"weights": weights, "dataset": dataset, "denoiser": denoiser}


def git_commit() -> str | None:
    """The commit of the harness checkout, or None outside a git checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def run_identity(cfg: ExperimentConfig, device: torch.device, dds_batch: int, n_dataset: int) -> dict[str, Any]:
    """The identity of a run of `cfg` on `device` with this process's torch thread count."""
    return {
        "config": cfg.identity_dict(),
        "inputs": {name: path_identity(p) for name, p in input_paths(cfg).items()},
        "dataset_items": n_dataset,
        "harness_version": __version__,
        "git_commit": git_commit(),
        "torch_version": torch.__version__,
        "device": device_identity(device),
        "torch_threads": torch.get_num_threads(),
        "dds_batch": dds_batch,
    }


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict):
        out: dict[str, Any] = {}
        for key, value in data.items():
            out.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return out or {prefix: {}}
    return {prefix: data}


def differences(stored: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """'field: stored X, this run Y' for every leaf that differs."""
    a, b = _flatten(stored), _flatten(current)
    return [
        f"{key}: stored {a.get(key)!r}, this run {b.get(key)!r}"
        for key in sorted(set(a) | set(b))
        if a.get(key) != b.get(key)
    ]
