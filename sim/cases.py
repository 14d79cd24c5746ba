"""Test cases for the stream bench (`bitfab.sim.stream_tb`) from the golden model.

A case is JSON: the load words, the input beats, and per output stream the
beats the golden model predicts, packed with the same layouts the hardware
uses (`MVAUConfig.in_layout` / `out_layout`), so a beat compares with ``==``.
"""

import json
import random
from pathlib import Path

from bitfab.hls_gen.compiler.plan import load_stream
from bitfab.sw_driver.beats import input_beats, output_beats
from bitfab.sw_driver.weights import check_load_words

from .runner import run_bench

__all__ = ["network_case", "dfnt_case", "direct_case", "run_case"]


def _position_major(values):
    """A layer's outputs per item, as its stream carries them: (items * positions, rows),
    a convolution's (items, rows, H, W) position by position."""
    if values.dim() == 4:
        return values.permute(0, 2, 3, 1).reshape(-1, values.shape[1])
    return values


def network_case(graph, configs, pixels, taps=True):
    """The case for a whole network: every layer's output tapped (`taps`), the scores
    at ``o``. `pixels` are the first layer's input codes: (items, cols), or (items, C,
    H, W) for a network that starts with a convolution."""
    _, trace = graph.run(pixels)
    outputs, per_item = {}, {}
    for k, (layer, config) in enumerate(zip(graph.layers, configs)):
        values = trace[layer.name]["codes" if layer.output is not None else "logits"]
        outputs[f"tap{k}"] = output_beats(config, _position_major(values))
        per_item[f"tap{k}"] = config.groups * config.out_positions
    outputs["o"], per_item["o"] = outputs[f"tap{len(configs) - 1}"], configs[-1].groups
    if not taps:
        outputs = {"o": outputs["o"]}
    words = check_load_words(load_stream(graph, configs), configs)
    encoding = graph.layers[0].input_encoding
    if pixels.dim() == 4:     # an image: pixel by pixel, each pixel's channels together
        pixels = pixels.permute(0, 2, 3, 1)
    return {"words": words, "inputs": input_beats(configs[0], pixels.flatten(1), encoding),
            "outputs": outputs, "beats_per_item": per_item}


def dfnt_case(config, x, w, y):
    """The case for a `DFNTConvEngine`: weights (O, C, k, k), images x (N, C, H, W) and
    the outputs they must give, y (N, O, Hout, Wout), all integer tensors."""
    from bitfab.hls_gen.compiler.engines import load_words
    from bitfab.hls_gen.golden.dfnt import engine_input_rows, engine_output_rows
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
    from bitfab.hls_gen.compiler.engines import load_words
    return {"words": load_words("direct", config, w), "inputs": inputs, "outputs": {"o": outputs},
            "beats_per_item": {"o": channels * out_h * out_w // p}}


def run_case(component, toplevel, case, build_root, seed, sim="verilator", idle=0.0,
             backpressure=0.0, key=None, raise_on_mismatch=True, stall_limit=None,
             optimize=False):
    """Run `case` through the stream bench; returns its result (mismatches, cycles, ...).
    `stall_limit`: cycles without a transfer after which the bench calls a deadlock
    (default `bitfab.sim.streams.STALL_LIMIT`); `optimize`: Verilator at -O1, for
    long runs.

    If any beat differs: raises, naming the seed, the first mismatch and the wave
    dump; or, without `raise_on_mismatch`, returns the result with ``failure`` (the
    bench's error) and ``waves`` (the wave dumps) once the bench has written it.
    """
    build_root = Path(build_root).resolve()   # the simulator runs elsewhere
    build_root.mkdir(parents=True, exist_ok=True)
    tag = f"{toplevel}_{seed}_{random.Random(json.dumps(case['words'][:64])).getrandbits(32):08x}"
    case_path = build_root / f"case_{tag}.json"
    result_path = build_root / f"result_{tag}.json"
    case_path.write_text(json.dumps(case))
    result_path.unlink(missing_ok=True)
    params = {"case": str(case_path), "result": str(result_path), "seed": seed, "idle": idle,
              "backpressure": backpressure}
    if stall_limit is not None:
        params["stall_limit"] = stall_limit
    try:
        run_bench(component, toplevel, "bitfab.sim.stream_tb", params, build_root, seed, sim,
                  key=key, optimize=optimize, waves_on_failure=stall_limit is None)
    except RuntimeError as error:
        detail = json.loads(result_path.read_text()) if result_path.exists() else {}
        if not raise_on_mismatch and detail.get("mismatches"):
            return {**detail, "failure": str(error), "waves": getattr(error, "waves", [])}
        raise RuntimeError(f"{error}; first mismatch: {detail.get('first_mismatch')}") from error
    return json.loads(result_path.read_text())
