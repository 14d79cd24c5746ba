"""Verification cases from what the compiler emitted: for a design and real inputs,
the load words, the input beats, and per output stream the beats the golden model
predicts, packed with the layouts the hardware uses (`MVAUConfig.in_layout` /
`out_layout`), so a beat compares with ``==``. `bitfab.sim.cases.run_case` runs a
case in the stream bench; `bitfab.sim` never builds one.
"""

from bitfab.hls_gen.compiler.engines import load_words
from bitfab.hls_gen.compiler.stores import load_stream
from bitfab.hls_gen.golden.dfnt import engine_input_rows, engine_output_rows
from bitfab.rtl.network import load_latency
from bitfab.sw_driver.beats import input_beats, output_beats
from bitfab.sw_driver.weights import check_load_words

__all__ = ["network_case", "dfnt_case", "direct_case", "position_major", "pixel_rows"]


def position_major(values):
    """A layer's outputs per item, as its stream carries them: (items * positions, rows),
    a convolution's (items, rows, H, W) position by position."""
    if values.dim() == 4:
        return values.permute(0, 2, 3, 1).reshape(-1, values.shape[1])
    return values


def pixel_rows(pixels):
    """The first layer's input codes as they go down the input stream, (items,
    elements): an image (items, C, H, W) pixel by pixel, each pixel's channels
    together; a vector (items, cols) as it is."""
    if pixels.dim() == 4:
        pixels = pixels.permute(0, 2, 3, 1)
    return pixels.flatten(1)


def network_case(graph, configs, pixels, taps=True):
    """The case for a whole network: every layer's output tapped (`taps`), the scores
    at ``o``. `pixels` are the first layer's input codes: (items, cols), or (items, C,
    H, W) for a network that starts with a convolution."""
    _, trace = graph.run(pixels)
    outputs, per_item = {}, {}
    for k, (layer, config) in enumerate(zip(graph.layers, configs)):
        values = trace[layer.name]["codes" if layer.output is not None else "logits"]
        outputs[f"tap{k}"] = output_beats(config, position_major(values))
        per_item[f"tap{k}"] = config.groups * config.out_positions
    outputs["o"], per_item["o"] = outputs[f"tap{len(configs) - 1}"], configs[-1].groups
    if not taps:
        outputs = {"o": outputs["o"]}
    words = check_load_words(load_stream(graph, configs), configs)
    encoding = graph.layers[0].input_encoding
    return {"words": words, "loaded_within": load_latency(len(configs)),
            "inputs": input_beats(configs[0], pixel_rows(pixels), encoding),
            "outputs": outputs, "beats_per_item": per_item}


def dfnt_case(config, x, w, y):
    """The case for a `DFNTConvEngine`: weights (O, C, k, k), images x (N, C, H, W) and
    the outputs they must give, y (N, O, Hout, Wout), all integer tensors."""
    outputs = [config.out_layout.const(row).as_bits() for row in engine_output_rows(config, y)]
    return {"words": load_words("dfnt", config, w),
            "inputs": [config.in_layout.const(row).as_bits()
                       for row in engine_input_rows(config, x)],
            "outputs": {"o": outputs}, "beats_per_item": {"o": config.out_beats}}


def direct_case(config, x, w, y, padding):
    """The case for a `DirectConvEngine`: every output row in groups of `outputs`
    (out_width must divide), each group's patches channel by channel."""
    import torch
    k, p = config.kernel, config.outputs
    x = torch.nn.functional.pad(x.long(), (padding,) * 4)
    n, channels, out_h, out_w = y.shape
    if out_w % p:
        raise ValueError(f"output width {out_w} is not a multiple of {p} outputs per patch")
    inputs, outputs = [], []
    for image in range(n):
        for row in range(out_h):
            for col in range(0, out_w, p):
                for c in range(x.shape[1]):
                    patch = x[image, c, row:row + k, col:col + config.patch_cols]
                    inputs.append(config.in_layout.const(patch.flatten().tolist()).as_bits())
                for o in range(channels):
                    values = y[image, o, row, col:col + p].tolist()
                    outputs.append(config.out_layout.const(values).as_bits())
    return {"words": load_words("direct", config, w), "inputs": inputs, "outputs": {"o": outputs},
            "beats_per_item": {"o": channels * out_h * out_w // p}}
