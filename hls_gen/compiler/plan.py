"""Golden model -> hardware plan: each layer of a chain mapped to a matrix-vector unit.

The plan's jobs, each a module of this package, as hls4ml's passes: `map_to_hw`
(here) turns every IR layer into an `MVAUConfig` without folding;
`bitfab.hls_gen.compiler.folding` folds it (the default, the widest that fits a
board, or an explicit per-layer folding) and computes its schedule;
`bitfab.hls_gen.compiler.estimates` estimates its resources and refuses a plan
too big for the board; `bitfab.hls_gen.compiler.stores` gives the run-time
contents of every store (weights, coefficients, thresholds, scales) and the load
stream. `plan_to_dict`/`plan_from_dict` are the plan as ``plan.json`` holds it.
"""

from dataclasses import asdict
from math import prod

from bitfab.rtl.mvau import MVAUConfig
from bitfab.rtl.window import WindowConfig

from bitfab.hls_gen.compiler.stores import plane_sum_coefficients
from bitfab.hls_gen.errors import PlanError, UnsupportedLayerError
from bitfab.hls_gen.golden.ir import PopcountLayer, XnorLayer, kernel_shape

__all__ = ["PlanError", "INPUT_BEAT", "map_to_hw", "layer_config", "plan_to_dict",
           "plan_from_dict"]

# The host writes this many pixels per input beat (at most).
INPUT_BEAT = 8

def _window(layer, shape):
    """The sliding window of convolution `layer` on input `shape` (C, H, W)."""
    g = layer.geometry
    channels, kh, kw = kernel_shape(layer)
    if g.groups != 1 or kh != kw or g.stride[0] != g.stride[1] or g.padding[0] != g.padding[1]:
        raise UnsupportedLayerError(
            f"layer {layer.name}: convolutions map to hardware with square kernels, equal "
            f"strides and padding, groups 1; not {kh}x{kw}, stride {g.stride}, padding "
            f"{g.padding}, groups {g.groups}")
    if shape is None or shape[0] != channels:
        raise PlanError(f"layer {layer.name}: a convolution of {channels} input channels "
                        f"needs an input image of {channels} channels, not {shape}")
    try:
        return WindowConfig(channels=channels, simd=1, kernel=kh, height=shape[1],
                            width=shape[2], stride=g.stride[0], padding=g.padding[0],
                            element_bits=layer.input_planes, pad_code=0)
    except ValueError as error:
        raise UnsupportedLayerError(f"layer {layer.name}: {error}") from None

def _pool(layer, window, rows, n_out):
    """The max pool's window on convolution `layer`'s codes, or None."""
    if layer.pool is None:
        return None
    if window is None:
        raise UnsupportedLayerError(f"layer {layer.name}: only a convolution's codes are "
                                    f"pooled in hardware")
    kernel, stride = layer.pool
    try:
        return WindowConfig(channels=rows, simd=1, kernel=kernel, height=window.out_height,
                            width=window.out_width, stride=stride, padding=0,
                            element_bits=n_out, pad_code=0)
    except ValueError as error:
        raise UnsupportedLayerError(f"layer {layer.name}: max pool {kernel}x{kernel} stride "
                                    f"{stride}: {error}") from None

def map_to_hw(graph, image=None):
    """One unfolded `MVAUConfig` (pe = simd = 1) per layer of the golden model; a
    convolution's carries its sliding window on the image it sees, from `image`
    ((height, width) of the input of a network that starts with a convolution) on
    through the layers."""
    configs = []
    shape = None
    if image is not None and graph.layers[0].geometry.kind == "conv2d":
        shape = (kernel_shape(graph.layers[0])[0], *image)
    for layer in graph.layers:
        previous = configs[-1] if configs else None
        config = layer_config(layer, shape, previous.n_out if previous else graph.input_bits,
                              "the layer before")
        configs.append(config)
        shape = config.out_shape or (config.rows,)
    return configs

def layer_config(layer, shape, n_in, source="its input"):
    """The unfolded `MVAUConfig` of IR `layer` on an input of `shape` ((C, H, W) of an
    image, (features,), or None where unknown) whose elements have `n_in` planes;
    `source` names that input in errors."""
    if layer.geometry.kind not in ("linear", "conv2d"):
        raise UnsupportedLayerError(f"layer {layer.name}: {layer.geometry.kind} layers "
                                    f"have no hardware mapping")
    window = _window(layer, shape) if layer.geometry.kind == "conv2d" else None
    if window is None and shape is not None and len(shape) == 3 and not layer.flatten_input:
        raise UnsupportedLayerError(f"layer {layer.name}: a fully connected layer after a "
                                    f"convolution must flatten its input")
    widths = layer.widths
    if isinstance(layer, PopcountLayer):
        rows, m = layer.bases.shape[1], layer.bases.shape[0]
        common = dict(m=m, n_in=layer.input_planes, front="and",
                      coef_bits=widths.coef_bits, plane_sum=plane_sum_coefficients(layer))
    elif isinstance(layer, XnorLayer):
        rows = layer.weight_bits.shape[0]
        common = dict(m=1, n_in=1, front="xnor")
    else:
        raise UnsupportedLayerError(f"layer {getattr(layer, 'name', layer)}: IR type "
                                    f"{type(layer).__name__} has no hardware mapping")
    if layer.output is not None:
        out = dict(output="codes", n_out=layer.output.values.shape[1],
                   threshold_bits=widths.threshold_bits)
    else:
        out = dict(output="scores", scale_bits=widths.scale_bits,
                   logit_bits=widths.logit_bits)
    if common["n_in"] != n_in:
        raise PlanError(f"layer {layer.name}: takes {common['n_in']} planes per input, "
                        f"{source} gives {n_in}")
    if window is None and shape is not None and widths.fan_in != prod(shape):
        raise PlanError(f"layer {layer.name}: takes {widths.fan_in} inputs, {source} "
                        f"gives {prod(shape)} ({' x '.join(map(str, shape))})")
    pool = _pool(layer, window, rows, out.get("n_out", 1))
    return MVAUConfig(rows=rows, cols=widths.fan_in, acc_bits=widths.acc_bits,
                      window=window, pool=pool, **common, **out)

def _divisors(value, limit):
    return [d for d in range(1, min(value, limit) + 1) if value % d == 0]

def _largest_divisor(value, limit):
    return _divisors(value, limit)[-1]

def plan_to_dict(configs, names):
    """The plan as JSON: each layer's name, its `MVAUConfig` fields and the output FIFO
    depth it is built with (`MVAUConfig.fifo_depth`, for people; not read back)."""
    return {"layers": [{"name": name, **asdict(c), "fifo_depth": c.fifo_depth}
                       for name, c in zip(names, configs)]}

def plan_from_dict(value):
    names = [entry["name"] for entry in value["layers"]]
    configs = [MVAUConfig(**{k: v for k, v in entry.items() if k not in ("name", "fifo_depth")})
               for entry in value["layers"]]
    return configs, names
