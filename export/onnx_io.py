"""Writing ONNX files: the exporter call, checking, hashing, fp16 and int8 variants."""
from __future__ import annotations

import warnings
from pathlib import Path

import onnx
import torch
from torch import nn

OPSET = 18


def export_module(module: nn.Module, args: tuple, path: Path, input_names: list[str],
                  output_names: list[str], dynamic_axes: dict[str, dict[int, str]]) -> Path:
    """Export `module(*args)` with TorchScript tracing (dynamic axes named) and check it."""
    module.eval()
    path = Path(path)
    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)  # nn.TransformerEncoder's fused op has no ONNX form
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # tracer warnings about Python scalars are expected
            torch.onnx.export(module, args, str(path), dynamo=False, opset_version=OPSET,
                              input_names=input_names, output_names=output_names,
                              dynamic_axes=dynamic_axes, do_constant_folding=True)
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)
    onnx.checker.check_model(str(path), full_check=True)
    return path


def to_fp16(src: Path, dst: Path) -> Path:
    """An fp16 copy of a model for GPUs; inputs and outputs stay float32 (casts at the edges)."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(onnx.load(str(src)), keep_io_types=True)
    _sort_nodes(model.graph)
    onnx.save(model, str(dst))
    onnx.checker.check_model(str(dst))
    return Path(dst)


def fp16_weights(path: Path, min_elements: int = 1024) -> Path:
    """Store a model's large float32 weights as float16, in place, each read through a Cast to
    float32 where the graph uses it: half the file, the same float32 arithmetic on any
    device (only the weights are rounded, once). Initializers under `min_elements` stay."""
    from onnx import helper, numpy_helper

    model = onnx.load(str(path))
    graph = model.graph
    casts = []
    for init in list(graph.initializer):
        if init.data_type != onnx.TensorProto.FLOAT or init.name.endswith("__fp16"):
            continue
        array = numpy_helper.to_array(init)
        if array.size < min_elements:
            continue
        half = numpy_helper.from_array(array.astype("float16"), init.name + "__fp16")
        graph.initializer.remove(init)
        graph.initializer.append(half)
        casts.append(helper.make_node("Cast", [half.name], [init.name], to=onnx.TensorProto.FLOAT,
                                      name=init.name + "__cast"))
    for node in reversed(casts):
        graph.node.insert(0, node)
    onnx.save(model, str(path))
    onnx.checker.check_model(str(path))
    return Path(path)


def to_int8(src: Path, dst: Path) -> Path:
    """An int8 copy of a model for CPUs: the weights of every MatMul and Gemm quantised per
    output channel (symmetric int8), activations quantised per call (dynamic quantisation);
    inputs and outputs stay float32. On CPUs with VNNI the products run in int8."""
    import logging

    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # the quantiser's advice to pre-process concerns static quantisation
    try:
        quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8, per_channel=True,
                         op_types_to_quantize=["MatMul", "Gemm"])
    finally:
        root.setLevel(level)
    onnx.checker.check_model(str(dst))
    return Path(dst)


def _sort_nodes(graph: onnx.GraphProto) -> None:
    """Topologically sort a graph's nodes in place (the fp16 converter appends input casts
    after the nodes that read them)."""
    available = {i.name for i in graph.input} | {i.name for i in graph.initializer} | {""}
    pending, ordered = list(graph.node), []
    while pending:
        ready = [n for n in pending if all(i in available for i in n.input)]
        if not ready:
            raise ValueError("graph has a cycle or reads an undefined tensor")
        for node in ready:
            ordered.append(node)
            available.update(node.output)
        done = {id(n) for n in ready}
        pending = [n for n in pending if id(n) not in done]
    del graph.node[:]
    graph.node.extend(ordered)


def io_spec(path: Path) -> dict:
    """Input and output names, element types and shapes (symbolic axes by name) of a model."""
    model = onnx.load(str(path), load_external_data=False)

    def describe(values):
        out = {}
        for v in values:
            t = v.type.tensor_type
            dims = [d.dim_param or d.dim_value for d in t.shape.dim]
            out[v.name] = {"type": onnx.TensorProto.DataType.Name(t.elem_type).lower(), "shape": dims}
        return out

    return {"inputs": describe(model.graph.input), "outputs": describe(model.graph.output)}
