"""What quantbench's runtime costs on top of LiteRT: `LiteModel.predict` against a bare interpreter loop.

Usage: .venv/bin/python bench/runtime_overhead.py [--rounds 2000] [--batch-rounds 30] [--smoke]

On the demo CNN (trained 2 epochs; weights do not change the timing), float32 and int8-only:
- batch 1: `predict(x)` (float in, float out) against a bare `ai_edge_litert` Interpreter doing
  set_tensor / invoke / get_tensor on inputs already in the model's dtype ("bare"), and against the
  same bare loop calling quantbench's quantize/dequantize ("bare+quant": the same arithmetic as
  predict without its checks). Target: predict / bare <= 1.10. For int8 I/O, predict / bare+quant
  is the per-call overhead; the rest is the float<->int8 conversion a float caller needs anyway.
- batched: one `predict` on the 450 test images against 450 single-image `predict` calls.
  Target: >= 10x.
All runners of a measurement are interleaved round by round (shuffled order), so load from other
processes on this shared machine hits them alike. Ratios are the median of the per-round paired ratios,
with its distribution-free 95 % interval. --smoke: the untrained CNN, 100 and 3 rounds.
"""
from __future__ import annotations

import argparse

import numpy as np


def paired_ratio(a: np.ndarray, b: np.ndarray) -> str:
    from quantbench.core import stats

    r = a / b
    lo, hi = stats.median_ci(r)
    return f"{np.median(r):.3f} (95 % CI {lo:.3f}–{hi:.3f})"


def bare_runners(content: bytes, samples: list[np.ndarray]):
    """The bare interpreter loop on inputs already in the model's dtype; and the same loop calling
    quantbench's own quantize/dequantize: predict's arithmetic without its checks and list handling."""
    from ai_edge_litert.interpreter import Interpreter

    from quantbench.runtime.litert import LiteModel, dequantize, quantize

    it = Interpreter(model_content=content, num_threads=1)
    it.allocate_tensors()
    i_idx, o_idx = it.get_input_details()[0]["index"], it.get_output_details()[0]["index"]
    described = LiteModel(content)  # only to read the scale and zero-point, as the caller would
    inp, out = described.inputs[0], described.outputs[0]
    prepared = [quantize(s, inp) for s in samples]

    def bare(i):
        it.set_tensor(i_idx, prepared[i])
        it.invoke()
        return it.get_tensor(o_idx)

    def bare_q(i):
        it.set_tensor(i_idx, quantize(samples[i], inp))
        it.invoke()
        return dequantize(it.get_tensor(o_idx), out)
    return bare, bare_q


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2000, help="batch-1 rounds (samples cycle)")
    parser.add_argument("--batch-rounds", type=int, default=30)
    parser.add_argument("--smoke", action="store_true", help="untrained, 100 and 3 rounds: checks the script runs")
    args = parser.parse_args()
    if args.smoke:
        args.rounds, args.batch_rounds = 100, 3

    import quantbench
    from quantbench.engines.converter import convert
    from quantbench.inputs import data, models
    from quantbench.measure import timing as bench

    split = data.digits()
    models.seed_everything(0)
    model = models.reference_cnn()
    if not args.smoke:
        model = models.train(model, split.x_train, split.y_train, epochs=2)
    calib = data.calibration_sample(split.x_train, 200, 0)
    x = split.x_test
    samples = [x[i:i + 1] for i in range(len(x))]
    n = len(samples)

    for technique in ("float32", "int8-only"):
        content = convert(model, technique, calib).content
        m = quantbench.load(content)
        bare, bare_q = bare_runners(content, samples)
        runners = {"predict": lambda i: m.predict(samples[i % n]), "bare": lambda i: bare(i % n),
                   "bare+quant": lambda i: bare_q(i % n)}
        np.testing.assert_allclose(m.predict(samples[0]), bare_q(0))  # the same work, the same answer
        t = bench.latency(runners, args.rounds, warmup=50).times
        print(f"\n{technique}, batch 1, {args.rounds} interleaved rounds (median ms per call, 95 % CI):")
        for name, ms in t.items():
            s = bench.summarize(ms)
            print(f"  {name:<11} {s['median'] * 1e3:7.2f} µs ({s['ci95'][0] * 1e3:.2f}–{s['ci95'][1] * 1e3:.2f})")
        print(f"  predict / bare       = {paired_ratio(t['predict'], t['bare'])}   target <= 1.10")
        print(f"  predict / bare+quant = {paired_ratio(t['predict'], t['bare+quant'])}")

        loop = {"batched predict": lambda i: m.predict(x),
                "per-image predict": lambda i: [m.predict(s) for s in samples]}
        t = bench.latency(loop, args.batch_rounds, warmup=2).times
        per = {k: bench.summarize(v)["median"] for k, v in t.items()}
        print(f"{technique}, {n} images, {args.batch_rounds} interleaved rounds: batched {per['batched predict']:.2f} ms, "
              f"per-image loop {per['per-image predict']:.2f} ms; speed-up "
              f"{paired_ratio(t['per-image predict'], t['batched predict'])}   target >= 10")


if __name__ == "__main__":
    main()
