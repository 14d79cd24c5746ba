"""A plan's resources before synthesis: LUT4s, flip-flops, block RAMs and DSPs per
layer (`estimate`, `pool_estimate`), and the refusal of a plan too big for the
board (`check_fit`), naming the layer and the resource."""

from bitfab.rtl.mvau import ISSUE_STAGES, READ_STAGES
from bitfab.rtl.pe import lane_sum_bound

from bitfab.hls_gen.errors import PlanError

__all__ = ["estimate", "pool_estimate", "check_fit"]

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
