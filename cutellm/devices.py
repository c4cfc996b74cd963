"""Where and in what precision to compute: the one place a torch device and a training precision are chosen."""

from __future__ import annotations

from .errors import ConfigError

DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "fp32", "bf16")


def resolve_device(name: str = "auto", local_rank: int | None = None) -> str:
    """'auto' picks CUDA when present, else CPU; a device this machine lacks raises ConfigError.

    `local_rank` is the process's index on its machine under torchrun (cutellm.distributed): each process then
    trains on its own GPU, 'cuda:<local_rank>'. CPU processes share the CPU.
    """
    import torch

    if name not in DEVICES:
        raise ConfigError(f"device: must be one of {', '.join(DEVICES)}, got {name!r}")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device: 'cuda' was asked for but torch sees no CUDA GPU on this machine")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ConfigError("device: 'mps' was asked for but this machine has no Apple GPU available to torch")
    if name == "cuda" and local_rank is not None:
        if local_rank >= torch.cuda.device_count():
            raise ConfigError(f"device: this process is number {local_rank} on its machine but torch sees only "
                              f"{torch.cuda.device_count()} GPU(s); start at most that many processes per machine "
                              "(torchrun --nproc_per_node)")
        return f"cuda:{local_rank}"
    return name


def available_devices() -> list[str]:
    """The device choices that work on this machine, 'auto' first: what a UI should offer (resolve_device decides)."""
    found = []
    for name in DEVICES:
        try:
            resolve_device(name)
        except ConfigError:
            continue
        found.append(name)
    return found


def cpu_has_native_bf16() -> bool:
    """Whether this CPU multiplies bf16 matrices in hardware (AVX512-BF16 or AMX: recent AMD EPYC/Ryzen, Intel Xeon
    from Cooper Lake on). There bf16 autocast trains the default model in ~0.8x of fp32's step time (bench/README.md,
    "Speed, round ten"); without it torch emulates bf16 and a step takes about twice as long as in fp32."""
    import torch

    checks = (getattr(torch.cpu, "_is_avx512_bf16_supported", None), getattr(torch.cpu, "_is_amx_tile_supported", None))
    return any(check is not None and check() for check in checks)


def resolve_precision(precision: str, device: str) -> str:
    """'fp32' or 'bf16': what training on `device` (a resolved device such as 'cuda:0') will compute in.

    'auto' is bf16 where the hardware computes it natively: a CUDA GPU from Ampere on, or a CPU with bf16 matrix
    instructions (cpu_has_native_bf16). Elsewhere it is fp32, where bf16 would be emulated and slower. A seed still
    gives the same model on the same machine either way; between machines the last digits differ (as fp32's already
    do between CPU kinds). 'bf16' asked for explicitly also runs on a CPU without it; 'fp32' never casts.
    """
    import torch

    if precision not in PRECISIONS:
        raise ConfigError(f"precision: must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    kind = torch.device(device).type
    # Native bf16 only (compute capability 8.0+, or ROCm): older GPUs emulate it, slower than fp32.
    cuda_bf16 = kind == "cuda" and (bool(torch.version.hip)
                                    or torch.cuda.get_device_capability(torch.device(device))[0] >= 8)
    if precision == "auto":
        return "bf16" if cuda_bf16 or (kind == "cpu" and cpu_has_native_bf16()) else "fp32"
    if precision == "bf16" and kind == "cuda" and not cuda_bf16:
        raise ConfigError("precision: this GPU does not support bf16 (it needs an Ampere or newer NVIDIA GPU); "
                          "use --precision fp32")
    if precision == "bf16" and kind not in ("cuda", "cpu"):
        raise ConfigError(f"precision: bf16 autocast is supported on cuda and cpu, not on {kind}; "
                          "use --precision fp32")
    return precision
