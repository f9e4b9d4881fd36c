"""What machine the numbers were measured on."""
from __future__ import annotations

import os
import platform
from importlib import metadata

SIMD_FLAGS = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni",
              "avx512_bf16", "amx_int8", "neon", "asimd", "asimddp", "i8mm", "fphp", "sve")
# int8 dot-product instructions (x86 VNNI/AMX, Arm dotprod/i8mm): without them int8 kernels rarely beat float
INT8_DOT_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8", "asimddp", "i8mm")


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def describe(threads: int = 1) -> dict:
    """CPU model, its SIMD flags (int8 dot product or not), core count, threads used, engine versions."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name":
                    model = value.strip()
                elif key in ("flags", "Features"):
                    flags.update(value.split())
    except OSError:
        pass
    return {
        "cpu": model,
        "arch": platform.machine(),
        "simd": [f for f in SIMD_FLAGS if f in flags],
        "int8_dot": any(f in flags for f in INT8_DOT_FLAGS) if flags else None,  # None: flags unknown
        "cores": os.cpu_count(),
        "threads": threads,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "litert": _version("ai-edge-litert"),
        "tensorflow": _version("tensorflow-cpu") or _version("tensorflow"),
        "keras": _version("keras"),
    }
