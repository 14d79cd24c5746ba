"""Golden model -> hardware plan: map layers to matrix-vector units, fold, check the board.

Passes, each ``apply(...) -> value``, as hls4ml's: `map_to_hw` turns every IR
layer into an `MVAUConfig` without folding, `fold` applies the default or an
explicit per-layer folding, `check_fit` refuses a plan too big for the board.
`load_rows` gives the run-time contents of every store (weights, coefficients,
thresholds, scales) in the layout `MVAUConfig.pack` turns into load words.
"""

from dataclasses import asdict, replace
from math import prod

import numpy as np
import torch

from bitfab.rtl.encoder import orient_thresholds
from bitfab.rtl.mvau import ISSUE_STAGES, READ_STAGES, MVAUConfig
from bitfab.rtl.pe import lane_sum_bound
from bitfab.rtl.window import WindowConfig

from bitfab.hls_gen.errors import BitfabError, UnsupportedLayerError
from bitfab.hls_gen.golden.ir import PopcountLayer, XnorLayer, kernel_shape

__all__ = ["PlanError", "map_to_hw", "layer_config", "fold", "default_folding", "fitting_folding", "image_cycles",
           "estimate", "check_fit", "load_rows", "load_stream", "plan_to_dict", "plan_from_dict"]

# The host writes this many pixels per input beat (at most).
INPUT_BEAT = 8


class PlanError(BitfabError):
    """A folding or plan that the hardware cannot take."""


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


def default_folding(configs, max_simd=64, max_pe_and=2, max_pe_xnor=8):
    """A folding balanced as FINN's, within the caps (the defaults fit the digits
    networks on the ULX3S 85F; `fitting_folding` narrows them for smaller boards).

    The slowest layer gets the widest folding (SIMD up to 64 inputs, PE up to 2
    rows for PA layers, 8 for XNOR), and sets the cycles per image. Every other
    layer gets the narrowest folding that is not slower (fewest counted bits,
    pe*simd, then fewest multipliers, then fewest rows, pe): a faster layer would
    only wait, while its popcounts and multipliers spread the design across the
    die. A layer is as slow as its compute (`MVAUConfig.cycles`) or its input
    (cols / the layer before's pe); the widest folding of each layer is never
    slower than the target, so every layer finds one.

    A PA layer's PEs get the fewest merge multipliers that keep it within the
    target (`MVAUConfig.multipliers`): one per phi_k when a row is a single fold,
    down to one per PE when its rows take M*N folds or the layer has time to
    spare. A time-shared merge is chosen only where its row sums fit a DSP operand.
    """
    def cap(c):
        return max_pe_and if c.front == "and" else max_pe_xnor

    first_beat = _first_beat(configs[0])
    widest = [_largest_divisor(c.rows, cap(c)) for c in configs]
    target = max([configs[0].image_elements // first_beat, _feed(configs[0], first_beat)]
                 + [_compute_cycles(c, pe, _largest_divisor(c.cols, max_simd), c.terms)
                    for c, pe in zip(configs, widest)]
                 + [_feed(c, pe) for c, pe in zip(configs[1:], widest)]
                 + [_pool_cycles(c, pe) for c, pe in zip(configs, widest)])
    folding, in_beat = [], first_beat
    for c, after in zip(configs, [*configs[1:], None]):
        fits = []
        for pe in _divisors(c.rows, cap(c)):
            if max(_feed(c, in_beat), _feed(after, pe) if after is not None else 0,
                   _pool_cycles(c, pe)) > target:
                continue
            for simd in _divisors(c.cols, max_simd):
                multipliers = _fewest_multipliers(c, pe, simd, target)
                if multipliers is not None:
                    dsps = pe * multipliers if c.front == "and" else 0
                    fits.append((pe * simd, dsps, pe, simd, multipliers))
        _, _, pe, simd, multipliers = min(fits)
        folding.append({"pe": pe, "simd": simd, "multipliers": multipliers})
        in_beat = pe
    return folding


# The default folding's caps (max SIMD, max PE of AND layers, of XNOR layers), widest
# first: `fitting_folding` takes the first whose plan fits the board.
FOLDING_CAPS = [(64, 2, 8), (64, 1, 4), (32, 1, 2), (16, 1, 1), (8, 1, 1), (4, 1, 1),
                (2, 1, 1), (1, 1, 1)]


def fitting_folding(configs, board, names=None):
    """The default folding at the widest `FOLDING_CAPS` whose plan fits `board`.

    Returns the folded configs and their `check_fit` estimate; a network that
    does not fit even at PE = SIMD = 1 is refused, naming the layer and the
    resource."""
    for caps in FOLDING_CAPS:
        folded = fold(configs, default_folding(configs, *caps), names, board)
        fit, overrun = _fit(folded, board, names)
        if overrun is None:
            return folded, fit
    raise PlanError(_overrun_text(board, *overrun) + ", even folded to PE = SIMD = 1 "
                    "everywhere; choose a larger board")


def fold(configs, folding=None, names=None, board=None, in_beats=None):
    """Apply `folding` (a list of {"pe", "simd", "multipliers", "fifo", "bank_rows"} per
    layer, None for the default). A PA layer given no multipliers (per PE, for its
    merge) gets the fewest that keep it within the rate of the folded pipeline's
    slowest stage (`image_cycles` with one multiplier per phi_k). Each layer's output
    FIFO gets the depth its schedule needs (`MVAUConfig.scheduled_fifo_depth`) unless
    "fifo" sets it. A weight store deeper than one of `board`'s block RAMs is split
    into banks where the board's family says so (`Family.weight_bank_rows`) unless
    "bank_rows" sets the rows of a bank (None: one store). `in_beats` gives each
    layer's input beat (its producer's PE) where the layers are not a chain; a
    callable, it is asked with the layers folded so far."""
    folding = default_folding(configs) if folding is None else folding
    names = names or [f"layer{k}" for k in range(len(configs))]
    if len(folding) != len(configs):
        raise PlanError(f"folding gives {len(folding)} layers, the network has {len(configs)}")
    folded = []
    for k, (config, f) in enumerate(zip(configs, folding)):
        pe, simd = f.get("pe", 1), f.get("simd", 1)
        for what, value, total, dim in (("pe", pe, config.rows, "output rows"),
                                        ("simd", simd, config.cols, "input columns")):
            if not isinstance(value, int) or value < 1 or total % value:
                raise PlanError(f"layer {names[k]}: {what}={value!r} does not divide its "
                                f"{total} {dim}")
        if in_beats is not None:
            in_beat = in_beats(k, folded)
        else:
            in_beat = folded[-1].pe if folded else _first_beat(config)
        window = config.window and replace(config.window, simd=in_beat)
        pool = config.pool and replace(config.pool, simd=pe)
        try:
            # The unit checks its multipliers (1..M*N; fewer only where its row sums
            # fit a DSP operand); the plan names the layer.
            unit = replace(config, pe=pe, simd=simd, in_beat=in_beat, window=window,
                           pool=pool, multipliers=f.get("multipliers"), fifo=f.get("fifo"))
            if "bank_rows" in f:
                bank_rows = f["bank_rows"]
            elif board is not None:
                bank_rows = board.family.weight_bank_rows(unit.weight_row_bits,
                                                          unit.weight_rows)
            else:
                bank_rows = None
            folded.append(replace(unit, weight_bank_rows=bank_rows))
        except ValueError as error:
            raise PlanError(f"layer {names[k]}: {error}") from None
    target = image_cycles(folded)
    return [c if f.get("multipliers") else
            replace(c, multipliers=_fewest_multipliers(c, c.pe, c.simd, target))
            for c, f in zip(folded, folding)]


def _feed(c, in_beat):
    """Cycles per image to bring `c` its inputs at `in_beat` elements a beat: a window
    unit sends each position's columns, one beat a cycle."""
    return c.positions * c.cols // in_beat


def image_cycles(configs):
    """Cycles per image of a folded pipeline: its slowest stage, a layer's compute
    (`MVAUConfig.cycles` per position), the feed of its input (a window unit
    sends each position's columns, `in_beat` elements a cycle) or its pooling."""
    first = configs[0]
    return max([first.image_elements // first.in_beat]
               + [max(c.positions * c.cycles, _feed(c, c.in_beat), _pool_cycles(c, c.pe))
                  for c in configs])


def _pool_cycles(c, pe):
    """Cycles per image of `c`'s max pool at `pe` elements a beat: its window unit
    streams every pooled position's kernel positions, a beat a cycle."""
    p = c.pool
    return 0 if p is None else p.out_height * p.out_width * p.kernel ** 2 * (c.rows // pe)


def _compute_cycles(c, pe, simd, multipliers):
    """Cycles per image of layer `c` folded to `pe` x `simd` with `multipliers`."""
    steps = -(-c.terms // multipliers)
    return c.positions * (c.rows // pe) * max(c.cols // simd, steps)


def _fewest_multipliers(c, pe, simd, target):
    """The fewest merge multipliers per PE keeping `c` at `pe` x `simd` within `target`
    cycles per image (a time-shared merge only where its row sums fit a DSP), or
    None."""
    terms = c.terms
    for multipliers in range(1, terms + 1):
        shareable = multipliers == terms or (c.front == "and" and c.shared_merge_fits)
        if shareable and _compute_cycles(c, pe, simd, multipliers) <= target:
            return multipliers
    return None


def _first_beat(config):
    """Input elements per beat into the first layer: at most `INPUT_BEAT`, dividing
    its columns (a convolution: its channels, a pixel's elements)."""
    return _largest_divisor(config.cols if config.window is None else config.window.channels,
                            INPUT_BEAT)


def estimate(config, board):
    """Resources of one layer, estimated before synthesis (the report gives nextpnr's own).

    LUTs: about 2 LUT4 per counted bit for the AND/XNOR front and popcount, an adder
    bit per accumulator bit and merged term, the multiplexer from the two input
    buffers to one fold's bits (about a LUT4 per two buffer bits) and comparators.
    FFs: the two input buffers (or, with the input in memory, `MVAUConfig.input_in_memory`,
    a block RAM and the fold word gathered), the loader's row, the issued weights and planes
    (`ISSUE_STAGES` registers each; a register buffer's planes `MVAUConfig.read_stages`
    more; banked weights, `MVAUConfig.weight_bank_rows`, a register per bank), per
    lane the popcount pipeline (about 2 bits per counted bit: a carry-chain tree
    registers every level) and the product and merge registers, the accumulators
    and the output stage; a time-shared merge
    (`MVAUConfig.multipliers`) trades the per-fold products for a row sum and a
    shift register place per lane, and a phi_k multiplexer per multiplier. DSPs: `MVAUConfig.multipliers`
    per PE (and one per scaled score). Block RAM: the weight and table
    stores, tiled by the device's widest RAM port. Against nextpnr on the digits
    PA MLP (ULX3S 85F): 12,825 LUTs estimated for 15,647 (the shell, its status
    and the skid buffers not counted), 20,560 FFs for 21,283.

    The board's FPGA family moves the estimate to its cells
    (`bitfab.rtl.families.Family.adjust_estimate`: on iCE40 products are logic
    and ``luts`` counts logic cells, as nextpnr's ICESTORM_LC does).
    """
    c = config
    terms = c.terms
    lanes = c.pe * terms
    codes = c.output == "codes"
    # A lane's fold count: a popcount tree, about 2 LUT4 per counted bit; with
    # plane_sum an adder tree of `simd` masked n_in-bit values.
    lane_bits = c.simd * (c.n_in + 1) if c.plane_sum else 2 * c.simd
    if c.multipliers < terms:
        # Time-shared merge: per lane a row sum (adder and register) and its place in
        # the shift register (a load-or-shift LUT per bit); per multiplier its phi_k
        # through a multiplexer on the step and a merged term.
        sum_bits = c.row_sum_bound.bit_length()
        merge_luts = (lanes * 2 * sum_bits
                      + c.dsps * (c.coef_bits * (c.merge_steps + 1) // 2 + c.acc_bits))
        merge_ffs = lanes * 2 * sum_bits + c.dsps * 2 * c.acc_bits
        products = [(c.coef_bits, sum_bits)] * c.dsps
    else:
        merge_luts, merge_ffs = lanes * c.acc_bits, lanes * 2 * c.acc_bits
        count = lane_sum_bound(c.simd, c.n_in, c.plane_sum)
        products = [(c.coef_bits, count.bit_length())] * c.dsps
    fold_bits = c.simd * c.n_in
    if c.input_in_memory:
        # A memory of fold words (block RAM here) and the register gathering one.
        buffer_luts, buffer_ffs = fold_bits // 2 + 30, fold_bits + 20
    else:
        buffer_luts, buffer_ffs = c.cols * c.n_in, 2 * c.cols * c.n_in
    luts = (lanes * lane_bits + merge_luts + buffer_luts
            + c.pe * c.n_out * c.threshold_bits * codes + 200)
    ffs = (buffer_ffs + c.pe * c.m * c.simd
           + ISSUE_STAGES * (c.simd * c.n_in + c.pe * c.m * c.simd)
           + c.read_stages * c.simd * c.n_in * (not c.input_in_memory)
           + (c.read_stages - READ_STAGES) * fold_bits * c.input_in_memory
           + lanes * lane_bits + merge_ffs + 2 * c.pe * c.acc_bits
           + 2 * c.pe * c.n_out * c.threshold_bits * codes + 100)
    products += [(c.acc_bits, c.scale_bits)] * (c.pe * bool(c.scale_bits))
    brams = sum(board.ram_blocks(s.width, s.depth) for s in c.segments
                if s.name not in ("coefficients", "weights"))
    banks, width = c.weight_banks, c.weight_row_bits
    brams += sum(board.ram_blocks(width, depth) for depth in c.weight_bank_depths)
    if banks > 1:
        # Each bank's register and its two flag registers; per bit, a LUT4 gates and
        # ORs two banks' registers, and an OR tree joins those.
        pairs = -(-banks // 2)
        ffs += banks * (width + 2)
        luts += width * (pairs + (pairs - 1) // 3) + banks
    if c.input_in_memory:
        brams += board.ram_blocks(fold_bits, c.input_memory_depth)
    if c.window is not None:
        # The line buffer, its counters and the output FIFO of the window unit.
        w = c.window
        brams += board.ram_blocks(w.layout.size, w.depth)
        luts += 150 + 4 * w.layout.size
        ffs += 100 + 5 * w.layout.size
    if c.pool is not None:
        pool = pool_estimate(c.pool, board)
        luts, ffs, brams = luts + pool["luts"], ffs + pool["ffs"], brams + pool["brams"]
    return board.family.adjust_estimate(
        c, {"luts": luts, "ffs": ffs, "brams": brams, "dsps": len(products)}, products, board)


def pool_estimate(pool, board):
    """A max pool's resources: its window unit (line buffer, counters, output FIFO) and
    a running maximum per fold."""
    size = pool.layout.size
    return {"luts": 150 + 6 * size, "ffs": 100 + 5 * size + pool.folds * size,
            "brams": board.ram_blocks(size, pool.depth), "dsps": 0}


def _fit(configs, board, names=None):
    """The per-layer estimates and their total, and the first overrun: (layer name,
    resource, running total) where the total passes what `board` can hold, or None."""
    names = names or [f"layer{k}" for k in range(len(configs))]
    total = {key: 0 for key in board.resources}
    layers, overrun = [], None
    for name, config in zip(names, configs):
        used = estimate(config, board)
        layers.append({"name": name, **used})
        for key, value in used.items():
            total[key] += value
            if overrun is None and total[key] > board.usable(key):
                overrun = (name, key, total[key])
    return {"layers": layers, "total": total}, overrun


def _overrun_text(board, name, key, total, what="layer"):
    usable = board.usable(key)
    placeable = f" ({usable} placeable)" if usable < board.resources[key] else ""
    return (f"plan does not fit {board.name}: {what} {name} brings {key} to {total} "
            f"(estimated), the device has {board.resources[key]}{placeable}")


def check_fit(configs, board, names=None):
    """Refuse a plan whose estimate exceeds the board, naming the layer and the resource.

    Returns the per-layer estimates and their total."""
    fit, overrun = _fit(configs, board, names)
    if overrun is not None:
        raise PlanError(_overrun_text(board, *overrun) + "; lower this layer's pe/simd or "
                        "choose a larger board")
    return fit


def _pack_bits(bits):
    """Rows of 0/1 (rows, width) -> Python ints, bit 0 first."""
    packed = np.packbits(np.asarray(bits, dtype=np.uint8), axis=1, bitorder="little")
    return [int.from_bytes(row.tobytes(), "little") for row in packed]


def load_rows(layer, config, input_shape=None):
    """What the load stream writes into `config`'s stores for IR `layer`; `input_shape`
    is the (C, H, W) of a convolution output that the layer flattens, if any."""
    c = config
    if isinstance(layer, PopcountLayer):
        bases = layer.bases
    else:
        bases = layer.weight_bits.unsqueeze(0)
    if c.window is not None:
        # A convolution's columns in the window's order: kernel row, column, channel.
        bases = bases.permute(0, 1, 3, 4, 2)
    elif input_shape is not None and len(input_shape) == 3:
        # A head over a flattened convolution output: PyTorch flattens channel first,
        # the window stream delivers position first.
        bases = bases.reshape(c.m, c.rows, *input_shape).permute(0, 1, 3, 4, 2)
    bases = bases.reshape(c.m, c.rows, c.cols)
    # Row r * folds + f holds, for PE p and base i, inputs f*simd .. (f+1)*simd - 1
    # at bit ((p * m + i) * simd + s): the order the PEs slice it in.
    weights = (bases.reshape(c.m, c.groups, c.pe, c.folds, c.simd)
               .permute(1, 3, 2, 0, 4).reshape(c.weight_rows, -1))
    rows = {"weights": _pack_bits(weights.numpy())}
    if c.front == "and":
        rows["coefficients"] = [layer.coefficients.flatten().tolist()]
    if c.output == "codes":
        values, descending = layer.output.values, layer.output.descending

        def channel(k):
            return {"thresholds": orient_thresholds(values[k].tolist(), bool(descending[k])),
                    "descending": int(descending[k])}
        rows["thresholds"] = [[channel(g * c.pe + p) for p in range(c.pe)]
                              for g in range(c.groups)]
    elif c.scale_bits:
        scale = layer.channel_scale.tolist()
        rows["scales"] = [scale[g * c.pe:(g + 1) * c.pe] for g in range(c.groups)]
    return rows


def plane_sum_coefficients(layer):
    """True when `layer` takes its inputs as bit planes of unsigned values and each of its
    coefficients is its weight base's first shifted by the plane, phi_(i, j) =
    phi_(i, 0) * 2^j: the form `MVAUConfig.plane_sum` sums whole input values for,
    one lane per base (a first layer's pixels, as the freezer writes it)."""
    if not isinstance(layer, PopcountLayer) or layer.input_encoding != "bitplanes":
        return False
    coef = layer.coefficients
    return bool((coef == coef[:, :1] * (1 << torch.arange(coef.shape[1]))).all())


def load_stream(graph, configs):
    """The whole load stream of `graph` for the plan `configs`: each layer's
    `load_rows`, packed (`MVAUConfig.pack`), layer after layer, as the network's
    load port takes them. A plane-sum layer's coefficients must keep that form (the
    datapath reads only each base's first): other ones are refused, naming the layer."""
    if len(graph.layers) != len(configs):
        raise PlanError(f"{len(graph.layers)} layers for a plan of {len(configs)}")
    for layer, config in zip(graph.layers, configs):
        check_plane_sum(layer, config)
    shapes = [None] + [c.out_shape for c in configs[:-1]]
    return [word for layer, config, shape in zip(graph.layers, configs, shapes)
            for word in config.pack(load_rows(layer, config, shape))]


def check_plane_sum(layer, config):
    """Refuse IR `layer` for a plane-sum `config` unless its coefficients keep that form
    (the datapath reads only each base's first), naming the layer."""
    if config.plane_sum and not plane_sum_coefficients(layer):
        raise PlanError(f"layer {layer.name}: its coefficients are not phi_(i, 0) * 2^j "
                        f"over bit planes, which this plan's plane-sum datapath "
                        f"assumes; build a plan for this model")


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
