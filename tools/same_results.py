"""Say where two results.json differ, timing aside: same study, before and after a change that must not alter it.

    python tools/same_results.py A/results.json B/results.json    # exit 0: identical outside timing

Timing-dependent fields (latency, throughput, conversion seconds, memory) are left out; every other field,
accuracies, sizes, scores, the recommendation, must be equal. The peak memory of the study is printed apart.
"""
from __future__ import annotations

import json
import sys

TIMED = {"latency_ms", "throughput", "convert_s", "memory_bytes", "peak_bytes"}


def differences(a, b, path: str = "") -> list[tuple[str, object, object]]:
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(set(a) | set(b)) if k not in TIMED
                for d in differences(a.get(k), b.get(k), f"{path}.{k}")]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for k, (x, y) in enumerate(zip(a, b)) for d in differences(x, y, f"{path}[{k}]")]
    return [] if a == b else [(path, a, b)]


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    a, b = (json.loads(open(p).read()) for p in argv)
    found = differences(a, b)
    for path, x, y in found:
        print(f"{path}: {x!r} != {y!r}")
    rec = [r.get("recommendation") or {} for r in (a, b)]
    print(f"{len(a['variants'])} variants; recommendation {rec[0].get('technique')} / {rec[1].get('technique')}; "
          f"peak memory {a['settings'].get('memory', {}).get('peak_bytes')} / "
          f"{b['settings'].get('memory', {}).get('peak_bytes')} bytes; {len(found)} difference(s) outside timing")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
