"""Folding a chain's plan: PE and SIMD per layer (the default, balanced as FINN's; the
widest default that fits a board; or an explicit one), each layer's merge
multipliers and output FIFO, and the pipeline's schedule (`image_cycles`)."""

from dataclasses import replace

from bitfab.hls_gen.compiler.estimates import _fit, _overrun_text
from bitfab.hls_gen.compiler.plan import INPUT_BEAT, PlanError, _divisors, _largest_divisor

__all__ = ["default_folding", "FOLDING_CAPS", "fitting_folding", "fold", "image_cycles"]

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

def stage_cycles(c):
    """Cycles per image of layer `c`'s stage: its compute (`MVAUConfig.cycles` per
    position), the feed of its input (a window unit sends each position's columns,
    `in_beat` elements a cycle) or its pooling, whichever is slowest."""
    return max(c.positions * c.cycles, _feed(c, c.in_beat), _pool_cycles(c, c.pe))


def image_cycles(configs):
    """Cycles per image of a folded pipeline: its slowest stage (`stage_cycles`), or
    the input's beats into the first layer."""
    first = configs[0]
    return max([first.image_elements // first.in_beat] + [stage_cycles(c) for c in configs])

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
