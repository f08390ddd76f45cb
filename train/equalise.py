"""Per-channel range equalisation around the convolutions that the int8 file quantises.

The int8 file rounds each activation to 256 levels over one range shared by all its channels
(per-tensor uint8: the only layout the int8 conv kernels take). Channels whose values span a
fraction of that range get a fraction of the levels. ESPCN x2's middle conv is the case: its
output channels span 0.7 to 3.2 (0.01-99.99th percentile) and its input channels, tanh outputs,
differ as widely, so its uint8 rounding cost 0.21 dB on Set5, twice the int8 tolerance.

This rewrites each such conv, exactly in float, so that every channel of its input and of its
output spans the range of the widest one; quantising the rewritten file then rounds every
channel as finely:

- input: a Mul by 1 / t_c before the conv, and the conv's weights of input channel c times t_c
  (t_c: channel c's largest magnitude relative to the widest channel's). No shift, since the
  conv pads with zeros and a shifted input would pad with another value.
- output: the conv's weights and bias of output channel c become (w, b - m_c) / s_c, and a
  BatchNormalization after the conv (scale s_c, bias m_c; the int8 file rounds between the two)
  gives back the original values (s_c, m_c: half-width and centre of channel c's range,
  relative to the widest channel's half-width).

The Mul and the BatchNormalization stay float: per-channel elementwise work, which OpenVINO
fuses into its int8 conv and ONNX Runtime runs as two extra passes. Measured on ESPCN x2
(2-core AVX2 EPYC): int8 output 49.2 -> 53.7 dB PSNR against fp32 on the held-out training
images, largest Set5/Set14 loss 0.19 -> 0.08 dB; speed 0.91x the exported layout's int8 file in
ONNX Runtime, 0.98x in OpenVINO (352x288, batch 4; a scratch timing, BENCHMARKS.md). RepSR x2, whose channels
are balanced already, gains nothing (51.8 -> 51.0 dB), so ``train.quantize`` keeps whichever
layout measures nearer fp32.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

RANGE_PERCENTILE = 99.99  # a channel's range: its 0.01-99.99th percentiles over the calibration patches
_FLOOR = 1e-3  # a channel that is (nearly) constant keeps a sane gain


def channel_ranges(model, tensors: list[str], patches: list[np.ndarray]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(low, high) per channel of each named NCHW tensor of ``model`` over the ``patches``."""
    import onnx
    import onnxruntime as ort

    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    del probe.graph.output[:]
    probe.graph.output.extend(onnx.helper.make_tensor_value_info(t, onnx.TensorProto.FLOAT, None) for t in tensors)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # keep every tensor
    options.log_severity_level = 3
    session = ort.InferenceSession(probe.SerializeToString(), options, providers=["CPUExecutionProvider"])
    values = [session.run(tensors, {session.get_inputs()[0].name: p}) for p in patches]
    ranges = {}
    for i, name in enumerate(tensors):
        per_channel = np.concatenate([v[i] for v in values]).transpose(1, 0, 2, 3).reshape(values[0][i].shape[1], -1)
        ranges[name] = (np.percentile(per_channel, 100 - RANGE_PERCENTILE, axis=1),
                        np.percentile(per_channel, RANGE_PERCENTILE, axis=1))
    return ranges


def _equalise_conv(graph, conv, in_range: tuple[np.ndarray, np.ndarray], out_range: tuple[np.ndarray, np.ndarray]) -> float:
    """Rewrite ``conv`` (module docstring); returns the half-width every output channel now spans."""
    from onnx import helper, numpy_helper

    initializers = {i.name: i for i in graph.initializer}
    weight = numpy_helper.to_array(initializers[conv.input[1]]).astype(np.float64)
    bias = (numpy_helper.to_array(initializers[conv.input[2]]).astype(np.float64) if len(conv.input) > 2
            else np.zeros(weight.shape[0]))

    magnitude = np.maximum(np.maximum(-in_range[0], in_range[1]), _FLOOR)
    in_gain = magnitude / magnitude.max()
    weight = weight * in_gain[None, :, None, None]

    low, high = out_range
    half_width = np.maximum((high - low) / 2, _FLOOR)
    out_gain, out_centre = half_width / half_width.max(), (high + low) / 2
    weight, bias = weight / out_gain[:, None, None, None], (bias - out_centre) / out_gain

    name, source, result = conv.name, conv.input[0], conv.output[0]
    graph.initializer.extend([
        numpy_helper.from_array(weight.astype(np.float32), f"{name}.equalised_weight"),
        numpy_helper.from_array(bias.astype(np.float32), f"{name}.equalised_bias"),
        numpy_helper.from_array((1 / in_gain).astype(np.float32)[None, :, None, None], f"{name}.input_gain"),
        numpy_helper.from_array(out_gain.astype(np.float32), f"{name}.output_gain"),
        numpy_helper.from_array(out_centre.astype(np.float32), f"{name}.output_centre"),
        numpy_helper.from_array(np.zeros_like(out_gain, np.float32), f"{name}.bn_mean"),
        numpy_helper.from_array(np.ones_like(out_gain, np.float32), f"{name}.bn_var"),
    ])
    conv.input[:] = [f"{source}.equalised", f"{name}.equalised_weight", f"{name}.equalised_bias"]
    conv.output[0] = f"{result}.equalised"
    at = list(graph.node).index(conv)
    graph.node.insert(at + 1, helper.make_node(
        "BatchNormalization",
        [conv.output[0], f"{name}.output_gain", f"{name}.output_centre", f"{name}.bn_mean", f"{name}.bn_var"],
        [result], name=f"{name}.restore_output", epsilon=0.0))
    graph.node.insert(at, helper.make_node("Mul", [source, f"{name}.input_gain"], [conv.input[0]],
                                           name=f"{name}.equalise_input"))
    return float(half_width.max())


def equalise_file(fp32: Path, out: Path, patches: list[np.ndarray], convs: list[str],
                  limits: dict[str, tuple[float, float]] | None = None) -> dict[str, tuple[float, float]]:
    """Write ``fp32`` with the named Conv nodes equalised (module docstring) to ``out``.

    ``limits``: bounds for some of those convs' outputs (by tensor name; a Tanh's input needs
    no range beyond where the Tanh saturates); each channel's range is cut to them before it is
    equalised. Returns the bounds of the rewritten output tensors those become."""
    import onnx

    limits = limits or {}
    model = onnx.load(str(fp32))
    nodes = {n.name: n for n in model.graph.node if n.op_type == "Conv"}
    tensors = sorted({t for c in convs for t in (nodes[c].input[0], nodes[c].output[0])})
    ranges = channel_ranges(model, tensors, patches)
    equalised_limits = {}
    for c in convs:
        output = nodes[c].output[0]
        low, high = ranges[output]
        if output in limits:
            low, high = np.clip(low, *limits[output]), np.clip(high, *limits[output])
        half_width = _equalise_conv(model.graph, nodes[c], ranges[nodes[c].input[0]], (low, high))
        if output in limits:
            equalised_limits[nodes[c].output[0]] = (-half_width, half_width)
    used = {i for n in model.graph.node for i in n.input}
    kept = [i for i in model.graph.initializer if i.name in used]  # the replaced weights go
    del model.graph.initializer[:]
    model.graph.initializer.extend(kept)
    onnx.checker.check_model(model)
    onnx.save(model, str(out))
    return equalised_limits
