"""Whether a score run's memory estimate fits what the device has free, and the one line that says it does not."""

from __future__ import annotations

from pathlib import Path

import torch

from esa.engine.scoring.memory import MemoryEstimate, gib


def available_ram() -> int | None:
    """Bytes of RAM available to a new allocation: psutil when installed, else MemAvailable of /proc/meminfo."""
    try:
        import psutil
    except ImportError:
        psutil = None
    if psutil is not None:
        return int(psutil.virtual_memory().available)
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def available_memory(device: torch.device) -> tuple[int | None, str]:
    """(bytes free, what that is) on the device scoring runs on; None when it cannot be told."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free), f"free memory on {device}"
    return available_ram(), "available RAM"


def refusal(run: str, estimate: MemoryEstimate, available: int | None, what: str, *, microbatch: int,
            n_metrics: int) -> str | None:
    """None when the estimate fits (or nothing is known), else one line naming the run, the numbers and the fixes.

    The model is loaded when this is asked, so its weights are no longer free memory: the rest of the estimate is
    compared with what is left.
    """
    if available is None or estimate.to_allocate <= available:
        return None
    fixes = []
    if estimate.accum_dtype != "bfloat16" and estimate.parts["accumulators"]:
        fixes.append("accum_dtype: bfloat16")
    if n_metrics > 1:
        fixes.append("fewer metrics")
    if microbatch > 1:
        fixes.append("a smaller microbatch")
    fixes.append("fewer matrices via components")
    return (f"score run {run}: needs about {gib(estimate.to_allocate)} GiB beyond the loaded weights, {what} is "
            f"{gib(available)} GiB (estimate {estimate.line()}); try {', '.join(fixes)}")


# Beyond this share of the available RAM the allocator's retained blocks could tip a run over: return them at once.
TIGHT_SHARE = 0.5


def host_memory_is_tight(estimate: MemoryEstimate, available: int | None) -> bool:
    """Whether what is still to allocate would take more than TIGHT_SHARE of the available RAM."""
    return available is not None and estimate.to_allocate > TIGHT_SHARE * available
