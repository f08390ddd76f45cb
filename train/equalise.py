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
images, largest Set5/Set14 loss 0.19 -> 0.08 dB; speed 0.89-0.91x the exported layout's int8
file in ONNX Runtime, 0.97-1.08x in OpenVINO (benchmarks/int8_layouts.py, BENCHMARKS.md). RepSR
x2, whose channels are balanced already, gains nothing (51.8 -> 51.0 dB), so ``train.quantize`` keeps whichever
layout measures nearer fp32.
"""
from __future__ import annotations

import dataclasses
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


@dataclasses.dataclass(frozen=True)
class Equalisation:
    """How one conv is rewritten: its input channel c divided by ``inputs[c]``, its output channel
    c made (y - ``centres[c]``) / ``outputs[c]``; afterwards every output channel spans
    +-``half_width``."""

    inputs: np.ndarray
    outputs: np.ndarray
    centres: np.ndarray
    half_width: float


def measure(in_range: tuple[np.ndarray, np.ndarray], out_range: tuple[np.ndarray, np.ndarray]) -> Equalisation:
    """The equalisation (module docstring) for a conv whose channels span these (low, high) ranges."""
    magnitude = np.maximum(np.maximum(-in_range[0], in_range[1]), _FLOOR)
    low, high = out_range
    half_width = np.maximum((high - low) / 2, _FLOOR)
    return Equalisation(magnitude / magnitude.max(), half_width / half_width.max(), (high + low) / 2,
                        float(half_width.max()))


def _equalise_conv(graph, conv, eq: Equalisation) -> None:
    """Rewrite ``conv`` in ``graph`` as ``eq`` says (module docstring)."""
    from onnx import helper, numpy_helper

    initializers = {i.name: i for i in graph.initializer}
    weight = numpy_helper.to_array(initializers[conv.input[1]]).astype(np.float64)
    bias = (numpy_helper.to_array(initializers[conv.input[2]]).astype(np.float64) if len(conv.input) > 2
            else np.zeros(weight.shape[0]))
    weight = weight * eq.inputs[None, :, None, None] / eq.outputs[:, None, None, None]
    bias = (bias - eq.centres) / eq.outputs

    name, source, result = conv.name, conv.input[0], conv.output[0]
    graph.initializer.extend([
        numpy_helper.from_array(weight.astype(np.float32), f"{name}.equalised_weight"),
        numpy_helper.from_array(bias.astype(np.float32), f"{name}.equalised_bias"),
        numpy_helper.from_array((1 / eq.inputs).astype(np.float32)[None, :, None, None], f"{name}.input_gain"),
        numpy_helper.from_array(eq.outputs.astype(np.float32), f"{name}.output_gain"),
        numpy_helper.from_array(eq.centres.astype(np.float32), f"{name}.output_centre"),
        numpy_helper.from_array(np.zeros_like(eq.outputs, np.float32), f"{name}.bn_mean"),
        numpy_helper.from_array(np.ones_like(eq.outputs, np.float32), f"{name}.bn_var"),
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


def equalisations(fp32: Path, patches: list[np.ndarray], convs: list[str],
                  limits: dict[str, tuple[float, float]] | None = None) -> dict[str, Equalisation]:
    """The equalisation of each named Conv node of ``fp32``, from its channels' ranges over the
    ``patches``. ``limits``: bounds for some of those convs' outputs (by tensor name; a Tanh's
    input needs no range beyond where the Tanh saturates); each channel's range is cut to them."""
    import onnx

    limits = limits or {}
    model = onnx.load(str(fp32))
    nodes = {n.name: n for n in model.graph.node if n.op_type == "Conv"}
    tensors = sorted({t for c in convs for t in (nodes[c].input[0], nodes[c].output[0])})
    ranges = channel_ranges(model, tensors, patches)
    result = {}
    for c in convs:
        output = nodes[c].output[0]
        low, high = ranges[output]
        if output in limits:
            low, high = np.clip(low, *limits[output]), np.clip(high, *limits[output])
        result[c] = measure(ranges[nodes[c].input[0]], (low, high))
    return result


def equalise_file(fp32: Path, out: Path, patches: list[np.ndarray], convs: list[str],
                  limits: dict[str, tuple[float, float]] | None = None,
                  given: dict[str, Equalisation] | None = None) -> dict[str, tuple[float, float]]:
    """Write ``fp32`` with the named Conv nodes equalised (module docstring) to ``out``: as
    ``equalisations`` measures them, or as ``given``. Returns bounds (+-the half-width) of the
    rewritten outputs of the convs whose outputs ``limits`` bounds."""
    import onnx

    chosen = given if given is not None else equalisations(fp32, patches, convs, limits)
    model = onnx.load(str(fp32))
    nodes = {n.name: n for n in model.graph.node if n.op_type == "Conv"}
    equalised_limits = {}
    for c in convs:
        output = nodes[c].output[0]
        _equalise_conv(model.graph, nodes[c], chosen[c])
        if output in (limits or {}):
            equalised_limits[nodes[c].output[0]] = (-chosen[c].half_width, chosen[c].half_width)
    used = {i for n in model.graph.node for i in n.input}
    kept = [i for i in model.graph.initializer if i.name in used]  # the replaced weights go
    del model.graph.initializer[:]
    model.graph.initializer.extend(kept)
    onnx.checker.check_model(model)
    onnx.save(model, str(out))
    return equalised_limits
