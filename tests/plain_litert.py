"""A .tflite file's class predictions through a plain `ai_edge_litert` interpreter, with quantization done here by
hand from each tensor's scale and zero-point: nothing of quantbench's runtime is used (issue 25)."""
from __future__ import annotations

import numpy as np


def predict(path_or_bytes, x: np.ndarray) -> np.ndarray:
    """The first output's float scores for each sample of `x`, one invoke per sample."""
    from ai_edge_litert.interpreter import Interpreter

    if isinstance(path_or_bytes, (bytes, bytearray)):
        interpreter = Interpreter(model_content=bytes(path_or_bytes))
    else:
        interpreter = Interpreter(model_path=str(path_or_bytes))
    interpreter.allocate_tensors()
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    scores = []
    for sample in np.asarray(x, np.float32):
        value = sample[None]
        if np.issubdtype(inp["dtype"], np.integer):  # q = round(x / scale) + zero_point, clipped to the dtype
            scale, zero = inp["quantization"]
            limits = np.iinfo(inp["dtype"])
            value = np.clip(np.rint(value / scale) + zero, limits.min, limits.max).astype(inp["dtype"])
        interpreter.set_tensor(inp["index"], value)
        interpreter.invoke()
        y = interpreter.get_tensor(out["index"])
        if np.issubdtype(out["dtype"], np.integer):  # x = (q - zero_point) * scale
            scale, zero = out["quantization"]
            y = (y.astype(np.float64) - zero) * scale
        scores.append(np.asarray(y, np.float64).reshape(-1))
    return np.stack(scores)


def hits(path_or_bytes, x: np.ndarray, y: np.ndarray) -> int:
    """How many samples' highest score is their label."""
    return int(np.sum(predict(path_or_bytes, x).argmax(axis=1) == np.asarray(y)))
