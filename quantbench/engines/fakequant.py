"""Keras 3 layers that simulate TFLite's int8 scheme, and the rewrite that puts them into a functional model.

The scheme is the converter's (TF 2.21, checked on its int8-only output): weights per output channel,
symmetric, narrow range [-127, 127], scale max|w| / 127 — Conv2D, DepthwiseConv2D and Dense alike;
activations per tensor, asymmetric int8; BatchNormalization folded into the convolution before it;
ReLU/ReLU6 fused into the Conv/FC/Add before them, so only the fused output is quantized.
This module imports TensorFlow and Keras at import; `quantbench.engines.qat` imports it when called.
"""
from __future__ import annotations

from ..runtime.tf import import_tensorflow

import_tensorflow()
import keras  # noqa: E402
from keras import ops  # noqa: E402

EMA_DECAY = 0.99  # tfmot uses 0.999 for long training; a few fine-tuning epochs need ranges that can move
MIN_SPAN = 1e-6  # a tensor that is always zero still needs a range with max > min
# The int8 kernels fix these outputs' scale and zero point (1/256, -128 and 1/128, 0); simulate exactly that.
FIXED_RANGES = {"softmax": (0.0, 255 / 256), "sigmoid": (0.0, 255 / 256), "tanh": (-1.0, 127 / 128)}
FUSABLE = ("relu", "relu6")  # activations the converter fuses into the Conv/FC/Add that feeds them

COMPUTE = ("Conv2D", "DepthwiseConv2D", "SeparableConv2D", "Dense")
SAME_SCALE = ("Flatten", "Reshape", "MaxPooling1D", "MaxPooling2D", "AveragePooling2D", "GlobalMaxPooling2D",
              "ZeroPadding2D", "Cropping2D", "Dropout", "SpatialDropout2D", "GaussianNoise", "Identity")
REQUANTIZE = ("Add", "Subtract", "Multiply", "Average", "Concatenate", "GlobalAveragePooling2D")
ACTIVATIONS = ("ReLU", "Activation", "Softmax", "LeakyReLU")


def quantize_weights(w, axis: int):
    """Per-channel symmetric narrow-range int8 fake-quant along `axis`, straight-through gradients."""
    others = [a for a in range(len(w.shape)) if a != axis % len(w.shape)]
    scale = ops.maximum(ops.max(ops.abs(w), axis=others, keepdims=True), 1e-12) / 127.0
    q = ops.clip(ops.round(w / scale), -127.0, 127.0) * scale
    # The rounding has no useful gradient; pass it straight through, as tfmot's fake-quant ops do.
    return w + ops.stop_gradient(q - w)


class ActivationQuant(keras.layers.Layer):
    """Per-tensor asymmetric int8 fake-quant with a range tracked in training (EMA of batch min/max).

    In export the FakeQuantWithMinMaxVars op carries the range to the converter, which quantizes the
    tensor with exactly it: the trained ranges are the shipped ranges.
    """

    def __init__(self, fixed=None, **kwargs):
        super().__init__(**kwargs)
        self.fixed = fixed
        self.observing = False  # set by `observe`: record min/max as calibration does, quantize nothing

    def build(self, input_shape):
        lo, hi = self.fixed or (0.0, 0.0)
        const = keras.initializers.Constant
        self.min = self.add_weight(name="min", shape=(), initializer=const(lo), trainable=False)
        self.max = self.add_weight(name="max", shape=(), initializer=const(hi), trainable=False)

    def call(self, x, training=None):
        if self.fixed is None and self.observing:
            self.min.assign(ops.minimum(self.min, ops.min(x)))
            self.max.assign(ops.maximum(self.max, ops.maximum(ops.max(x), self.min + MIN_SPAN)))
            return x
        if self.fixed is None and training:
            lo, hi = ops.minimum(ops.min(x), 0.0), ops.maximum(ops.max(x), 0.0)  # int8 must represent 0
            self.min.assign(self.min * EMA_DECAY + lo * (1 - EMA_DECAY))
            self.max.assign(ops.maximum(self.max * EMA_DECAY + hi * (1 - EMA_DECAY), self.min + MIN_SPAN))
        # tf.quantization.fake_quant_with_min_max_vars: STE gradients, and the converter reads its range
        return keras.quantizers.fake_quant_with_min_max_vars(x, self.min, self.max, num_bits=8)


class QuantCompute(keras.layers.Layer):
    """Conv2D, DepthwiseConv2D, SeparableConv2D or Dense with int8 weights, a BatchNormalization folded in."""

    def __init__(self, layer, bn=None, **kwargs):
        super().__init__(name=layer.name, **kwargs)
        self.inner, self.bn = layer, bn
        self.kind = type(layer).__name__
        act = keras.activations.serialize(layer.activation)
        self.act = act if act in FUSABLE else None
        if self.kind == "SeparableConv2D":
            self.mid = ActivationQuant(name=f"{layer.name}_dw_fq")  # the converter splits it in two ops

    def build(self, input_shape):
        if self.kind == "SeparableConv2D":
            self.mid.build(None)

    def _fold(self, kernel, bias, channel_shape):
        """Kernel and bias with the BatchNormalization folded in, as the converter folds it."""
        if self.bn is None:
            return kernel, bias
        bn = self.bn
        s = ops.rsqrt(bn.moving_variance + bn.epsilon)
        if bn.scale:
            s = s * bn.gamma
        b = (0.0 if bias is None else bias) - bn.moving_mean
        b = b * s + (bn.beta if bn.center else 0.0)
        return kernel * ops.reshape(s, channel_shape), b

    def call(self, x):
        L = self.inner
        bias = L.bias if L.use_bias else None
        if self.kind == "Dense":
            k, bias = self._fold(L.kernel, bias, (-1,))
            y = ops.matmul(x, quantize_weights(k, -1))
        elif self.kind == "Conv2D":
            k, bias = self._fold(L.kernel, bias, (-1,))
            y = ops.conv(x, quantize_weights(k, -1), L.strides, L.padding, dilation_rate=L.dilation_rate)
        elif self.kind == "DepthwiseConv2D":
            k = L.kernel
            kh, kw, cin, mult = k.shape
            k, bias = self._fold(k, bias, (cin, mult))
            # TFLite's depthwise channel c*mult + m is one output channel: one scale each
            k = ops.reshape(quantize_weights(ops.reshape(k, (kh, kw, cin * mult)), -1), (kh, kw, cin, mult))
            y = ops.depthwise_conv(x, k, L.strides, L.padding, dilation_rate=L.dilation_rate)
        else:  # SeparableConv2D: depthwise, its own int8 output, then a 1x1 convolution
            dk = L.depthwise_kernel
            kh, kw, cin, mult = dk.shape
            dk = ops.reshape(quantize_weights(ops.reshape(dk, (kh, kw, cin * mult)), -1), dk.shape)
            y = self.mid(ops.depthwise_conv(x, dk, L.strides, L.padding, dilation_rate=L.dilation_rate))
            k, bias = self._fold(L.pointwise_kernel, bias, (-1,))
            y = ops.conv(y, quantize_weights(k, -1), 1, "valid")
        if bias is not None:
            y = y + bias
        if self.act == "relu":
            y = ops.relu(y)
        elif self.act == "relu6":
            y = ops.relu6(y)
        return y


class QuantBatchNorm(keras.layers.Layer):
    """A BatchNormalization with no convolution to fold into: the converter's MUL then ADD, each int8."""

    def __init__(self, layer, **kwargs):
        super().__init__(name=layer.name, **kwargs)
        self.inner = layer
        self.inner.trainable = False  # frozen statistics: the converter uses the moving ones
        self.mid = ActivationQuant(name=f"{layer.name}_mul_fq")

    def build(self, input_shape):
        self.mid.build(None)

    def call(self, x):
        bn = self.inner
        s = ops.rsqrt(bn.moving_variance + bn.epsilon)
        if bn.scale:
            s = s * bn.gamma
        b = (bn.beta if bn.center else 0.0) - bn.moving_mean * s
        return self.mid(x * s) + b


def _unsupported(layer) -> str | None:
    """Why the simulation cannot take this layer, or None when it can."""
    kind = type(layer).__name__
    if isinstance(layer, keras.Model):
        return f"a nested model ({kind}); pass a flat functional model"
    if kind in COMPUTE:
        if getattr(layer, "data_format", "channels_last") != "channels_last":
            return f"{kind} with data_format={layer.data_format!r}; only channels_last is simulated"
        if getattr(layer, "groups", 1) != 1:
            return f"{kind} with groups={layer.groups}; grouped convolutions are not simulated"
        return None
    if kind == "BatchNormalization":
        last = layer.axis in (-1, layer.input_spec.ndim - 1)
        return None if last else f"BatchNormalization on axis {layer.axis}; only the channels axis (last) folds"
    if kind in SAME_SCALE + REQUANTIZE + ACTIVATIONS + ("InputLayer",):
        return None
    return (f"{kind} has no int8 simulation in quantbench: its weights train in float (the converter "
            "quantizes them at export); only its output is fake-quantized")


def _activation_name(layer) -> str | None:
    """'relu', 'relu6', 'softmax', ... for an activation layer; None for other layers."""
    kind = type(layer).__name__
    if kind == "Activation":
        return keras.activations.serialize(layer.activation)
    if kind == "Softmax":
        return "softmax"
    if kind == "ReLU":
        plain = not layer.negative_slope and not layer.threshold
        if plain and layer.max_value is None:
            return "relu"
        return "relu6" if plain and layer.max_value == 6 else "relu_variant"
    return "leaky_relu" if kind == "LeakyReLU" else None


def _as_functional(model):
    if isinstance(model, keras.Sequential):
        model = getattr(model, "_functional", None) or model
    if not hasattr(model, "_nodes_by_depth"):  # quantbench.engines.qat refuses these first, with a fix
        raise TypeError(f"{type(model).__name__} is not a functional or Sequential model")
    return model


def rewrite(model):
    """A QAT copy of a functional or Sequential Keras 3 model: int8 simulated where the converter quantizes.

    Returns (qat_model, float_layers) where float_layers lists (layer name, reason) of the layers left
    in float. The user's model is not touched: its layers are cloned with their weights.
    """
    source = _as_functional(model)
    clone = keras.models.clone_model(source)
    clone.set_weights(source.get_weights())
    nodes = [n for depth in sorted(clone._nodes_by_depth, reverse=True) for n in clone._nodes_by_depth[depth]]
    consumers: dict[int, list] = {}
    for n in nodes:
        for t in n.input_tensors:
            consumers.setdefault(id(t), []).append(n)
    outputs = {id(t) for t in clone.outputs}
    calls = {}
    for n in nodes:
        calls[id(n.operation)] = calls.get(id(n.operation), 0) + 1

    def only_consumer(node):
        """The single node reading `node`'s single output, or None."""
        if len(node.outputs) != 1 or id(node.outputs[0]) in outputs:
            return None
        users = consumers.get(id(node.outputs[0]), [])
        return users[0] if len(users) == 1 else None

    # Plan the fusions the converter makes: Conv/Dense + BatchNormalization, then + ReLU/ReLU6.
    folded, absorbed, no_fq = {}, set(), set()
    for n in nodes:
        layer = n.operation
        kind = type(layer).__name__
        if kind in COMPUTE and _unsupported(layer) is None:
            nxt = only_consumer(n)
            if (nxt is not None and type(nxt.operation).__name__ == "BatchNormalization"
                    and keras.activations.serialize(layer.activation) == "linear"
                    and calls[id(layer)] == 1 and calls[id(nxt.operation)] == 1
                    and _unsupported(nxt.operation) is None):
                folded[id(n)] = nxt.operation
                absorbed.add(id(nxt))
        if kind in COMPUTE + ("Add", "Subtract", "BatchNormalization"):
            end = n
            if id(n) in folded:
                end = only_consumer(n)
            elif kind in COMPUTE and keras.activations.serialize(layer.activation) != "linear":
                continue
            nxt = only_consumer(end)
            if nxt is not None and _activation_name(nxt.operation) in FUSABLE:
                no_fq.add(id(end))

    float_layers, wrapped = [], {}
    tensors = {}
    inputs = []
    for t in clone.inputs:
        x = keras.Input(batch_shape=t.shape, dtype=t.dtype, name=t.name)
        inputs.append(x)
        tensors[id(t)] = ActivationQuant(name=f"{t.name}_fq")(x)
    for n in nodes:
        if n.is_input:
            continue
        layer = n.operation
        kind = type(layer).__name__
        args, kwargs = n.arguments.fill_in(tensors)
        reason = _unsupported(layer)
        fq = True
        if id(n) in absorbed:
            y = args[0]  # the convolution before it already applies it
            fq = id(n) not in no_fq
        elif reason is not None:
            float_layers.append((layer.name, reason))
            y = layer(*args, **kwargs)
        elif kind in COMPUTE:
            if id(layer) not in wrapped:
                wrapped[id(layer)] = QuantCompute(layer, folded.get(id(n)))
            y = wrapped[id(layer)](args[0])
            act = keras.activations.serialize(layer.activation)
            if act not in FUSABLE + ("linear",):
                y = ActivationQuant(name=f"{layer.name}_pre_fq")(y)
                y = keras.layers.Activation(act, name=f"{layer.name}_act")(y)
                y = ActivationQuant(FIXED_RANGES.get(act), name=f"{layer.name}_fq")(y)
                fq = False
            else:  # a folded BatchNormalization's node carries the output's fake-quant
                fq = id(n) not in no_fq and id(n) not in folded
        elif kind == "BatchNormalization":
            y = QuantBatchNorm(layer)(args[0])
            fq = id(n) not in no_fq
        else:
            y = layer(*args, **kwargs)
            fq = kind not in SAME_SCALE and id(n) not in no_fq
        if fq:
            name = _activation_name(layer)
            ys = y if isinstance(y, (list, tuple)) else [y]
            ys = [ActivationQuant(FIXED_RANGES.get(name), name=f"{layer.name}_fq{'' if i == 0 else i}")(v)
                  for i, v in enumerate(ys)]
            y = ys if isinstance(y, (list, tuple)) else ys[0]
        for ref, new in zip(n.outputs, y if isinstance(y, (list, tuple)) else [y]):
            tensors[id(ref)] = new
    outs = [tensors[id(t)] for t in clone.outputs]
    qmodel = keras.Model(inputs if len(inputs) > 1 else inputs[0], outs if len(outs) > 1 else outs[0],
                         name=f"{model.name}_qat")
    return qmodel, float_layers


def trackers(qmodel) -> list[ActivationQuant]:
    """Every range tracker in a QAT model, those inside compute layers included."""
    return [layer for layer in qmodel._flatten_layers() if isinstance(layer, ActivationQuant)]


def observe(qmodel, calib, batch_size: int = 256) -> None:
    """Set every tracked range to the min/max over `calib`, as the converter's calibration would."""
    found = [t for t in trackers(qmodel) if t.fixed is None]
    for t in found:
        t.observing = True
    try:
        arrays = calib if isinstance(calib, (list, tuple)) else [calib]
        for start in range(0, len(arrays[0]), batch_size):
            part = [a[start:start + batch_size] for a in arrays]
            qmodel(part if len(part) > 1 else part[0], training=False)
    finally:
        for t in found:
            t.observing = False
