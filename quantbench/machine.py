"""What machine the numbers were measured on."""
from __future__ import annotations

import os
import platform
from importlib import metadata

SIMD_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni",
              "amx_int8", "neon", "asimd", "asimddp")


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def describe(threads: int = 1) -> dict:
    """CPU model, its SIMD flags, core count, threads used, and the engine versions."""
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
        "cores": os.cpu_count(),
        "threads": threads,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "litert": _version("ai-edge-litert"),
        "tensorflow": _version("tensorflow-cpu") or _version("tensorflow"),
        "keras": _version("keras"),
    }
