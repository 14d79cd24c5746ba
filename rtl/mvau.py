"""The folded matrix-vector-threshold unit (FINN's MVAU folding, PA and XNOR datapaths)."""

from dataclasses import dataclass

from amaranth.hdl import Cat, Const, Module, Mux, Shape, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from . import dsp
from .dsp import registered_product
from .encoder import ActivationEncoder, threshold_layout
from .families import family_of
from .pe import PAProcessingElement, lane_sum_bound, merge_lanes
from .popcount import Front, stage
from .ram import registered_read, uncontended_memory
from .window import WindowConfig

__all__ = ["MVAUConfig", "Segment", "MatrixVectorUnit", "pack_segments"]

#: Registers from the weight block RAM's output to the processing elements.
ISSUE_STAGES = 2
#: Cycles from a fold's issue to its weights' row leaving the block RAM: the read
#: address is a register, the fold's own (the other signals of the fold wait as long).
READ_STAGES = 1
#: Above this many folds the input buffer being computed on rotates by a fold each
#: issue, and the PEs take its low bits, instead of a fold multiplexer's output.
ROTATE_ABOVE_FOLDS = 4
#: Where a unit's input vectors wait (`MVAUConfig.input_buffer`).
INPUT_BUFFERS = ("auto", "registers", "memory")
#: Cycles a row group counts against the output FIFO's room beyond `MVAUConfig.latency`:
#: the in-flight counter's register and the FIFO's own output register.
FIFO_HOLD = 2
#: Places the room check keeps free: it is judged a cycle early, with one more place
#: for the fold issued meanwhile.
FIFO_MARGIN = 2


@dataclass(frozen=True)
class Segment:
    """One run-time loaded store: `depth` rows of `shape`, each sent as
    ``ceil(width / word_bits)`` little-endian words."""

    name: str
    shape: object
    depth: int

    @property
    def width(self):
        return data.Layout.cast(self.shape).size if isinstance(self.shape, data.Layout) \
            else self.shape.width

    def row_bits(self, value):
        """A row's integer bits from a plain int (unsigned shapes) or a layout value; a
        value that does not fit its field is refused (a layout's constant would cut it
        to the field's width without a word)."""
        if isinstance(self.shape, data.Layout):
            _check_fits(self.name, self.shape, value)
            return self.shape.const(value).as_bits()
        if not 0 <= value < 1 << self.width:
            raise ValueError(f"{self.name} row {value} does not fit {self.width} bits")
        return value


def _check_fits(name, shape, value):
    """Raise ValueError unless `value` (ints, lists and dicts as `shape`'s constants take
    them) fits every field of layout or shape `shape`."""
    if isinstance(shape, data.ArrayLayout):
        for k, item in enumerate(value):
            _check_fits(f"{name}[{k}]", shape.elem_shape, item)
    elif isinstance(shape, data.StructLayout):
        for field, item in value.items():
            _check_fits(f"{name}.{field}", shape[field].shape, item)
    else:
        plain = Shape.cast(shape)
        low = -(1 << plain.width - 1) if plain.signed else 0
        high = (1 << plain.width - plain.signed) - 1
        if not low <= int(value) <= high:
            kind = "signed" if plain.signed else "unsigned"
            raise ValueError(f"{name}: {value} does not fit {kind}({plain.width}) "
                             f"({low}..{high})")


@dataclass(frozen=True)
class MVAUConfig:
    """A layer's shape and folding: PE rows and SIMD columns per cycle.

    Parameters
    ----------
    rows, cols : int
        Output channels and input elements of the matrix.
    pe, simd : int
        Rows and input elements processed per cycle; they must divide `rows`
        and `cols`. Cycles per vector: ``rows / pe * cols / simd``.
    m : int
        Weight bases (1 for ``front="xnor"``).
    n_in : int
        Binary planes per input element: bit planes of a pixel, one-hot PA
        bases, or 1 for a sign code.
    front : str
        ``"and"`` (PA, merged with run-time coefficients) or ``"xnor"``.
    coef_bits, acc_bits : int
        Signed widths of phi_k and of the accumulator.
    output : str
        ``"codes"``: thresholds give ``n_out`` one-hot planes per row;
        ``"scores"``: the accumulator, times a per-row scale when `scale_bits`.
    in_beat : int
        Input elements per input beat (the producer's PE).
    word_bits : int
        Width of the weight-load stream.
    window : WindowConfig or None
        For a convolution layer, the sliding window whose windows are this unit's
        input vectors (`bitfab.rtl.convolution.ConvolutionUnit`); None for a fully
        connected layer. The unit itself ignores it.
    pool : WindowConfig or None
        For a convolution layer whose codes are max pooled, the pool's window on its
        output (channels `rows`, `pe` a beat, `n_out` bits an element); the
        `ConvolutionUnit` puts a `MaxPool` behind the unit. None: no pooling.
    multipliers : int or None
        Multipliers of each PE's phi_k merge, 1..m*n_in (``front="and"``); None for
        one per phi_k, merging every fold. Fewer time-share them once per row
        (`PAProcessingElement`): a row then takes ``max(folds, merge_steps)`` cycles,
        and the unit spaces its rows so that no PE ever stalls.
    plane_sum : bool
        The input's ``n_in`` planes are the bits of unsigned elements (a first layer's
        pixels) and each phi_(i, j) is phi_(i, 0) * 2^j (``front="and"``): each PE then
        sums its elements' values per weight base (`PAProcessingElement`), ``m``
        lanes instead of ``m * n_in``, and `multipliers` counts up to ``m``. Whoever
        packs the coefficients holds them to that form (`plane_sum_coefficients`).
    fifo : int or None
        The output FIFO's depth (at least 2); None for `scheduled_fifo_depth`, the
        depth the unit's schedule needs. A smaller one makes issue wait for room.
    weight_bank_rows : int or None
        The weight store split into banks of this many rows (a power of two), each
        read into a register of its own beside its block RAMs, the banks' rows then
        combined (`weight_banks`, `read_stages`): for a store deeper than one block
        RAM, whose read otherwise ends in a multiplexer over block RAMs spread over the
        chip. None: one store.
    input_buffer : str
        Where the two input vectors wait: ``"registers"`` (a fold multiplexer, or a
        rotating buffer above `ROTATE_ABOVE_FOLDS` folds), ``"memory"`` (a memory of
        fold words; `simd` must be a multiple of `in_beat`), or ``"auto"``: memory
        above `ROTATE_ABOVE_FOLDS` folds where it can be, registers elsewhere
        (`input_in_memory`).
    """

    rows: int
    cols: int
    pe: int = 1
    simd: int = 1
    m: int = 1
    n_in: int = 1
    front: str = "and"
    coef_bits: int = 16
    acc_bits: int = 32
    output: str = "codes"
    n_out: int = 1
    threshold_bits: int = 16
    scale_bits: int = 0
    logit_bits: int = 32
    in_beat: int = 1
    word_bits: int = 32
    window: WindowConfig | None = None
    multipliers: int | None = None
    pool: WindowConfig | None = None
    fifo: int | None = None
    input_buffer: str = "auto"
    plane_sum: bool = False
    weight_bank_rows: int | None = None

    def __post_init__(self):
        for name in ("window", "pool"):
            value = getattr(self, name)
            if isinstance(value, dict):      # as a plan's JSON holds it
                object.__setattr__(self, name, value := WindowConfig(**value))
            if value is not None and not isinstance(value, WindowConfig):
                raise TypeError(f"MVAU {name} must be a WindowConfig or None, not {value!r}")
        for name in ("rows", "cols", "pe", "simd", "m", "n_in", "acc_bits", "in_beat",
                     "word_bits"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"MVAU {name} must be a positive integer, not {value!r}")
        if self.fifo is not None and (not isinstance(self.fifo, int)
                                      or isinstance(self.fifo, bool) or self.fifo < 2):
            raise ValueError(f"MVAU fifo must be a depth of at least 2, or None for the "
                             f"scheduled depth, not {self.fifo!r}")
        for outer, inner in (("rows", "pe"), ("cols", "simd"), ("cols", "in_beat")):
            if getattr(self, outer) % getattr(self, inner):
                raise ValueError(f"MVAU {inner}={getattr(self, inner)} does not divide "
                                 f"{outer}={getattr(self, outer)}")
        rows = self.weight_bank_rows
        if rows is not None and (not isinstance(rows, int) or isinstance(rows, bool)
                                 or rows < 1 or rows & (rows - 1)):
            raise ValueError(f"MVAU weight_bank_rows must be a power of two, or None for one "
                             f"store, not {rows!r}")
        if self.input_buffer not in INPUT_BUFFERS:
            raise ValueError(f"MVAU input_buffer must be one of {', '.join(INPUT_BUFFERS)}, "
                             f"not {self.input_buffer!r}")
        if self.input_buffer == "memory" and self.simd % self.in_beat:
            raise ValueError(f"MVAU input_buffer='memory' gathers in_beat={self.in_beat} "
                             f"input elements into fold words of simd={self.simd}; simd must "
                             f"be a multiple of in_beat")
        if self.front not in ("and", "xnor"):
            raise ValueError(f"MVAU front must be 'and' or 'xnor', not {self.front!r}")
        if self.front == "xnor" and (self.m, self.n_in) != (1, 1):
            raise ValueError(f"an XNOR MVAU has m = n_in = 1, not {self.m}, {self.n_in}")
        if self.output not in ("codes", "scores"):
            raise ValueError(f"MVAU output must be 'codes' or 'scores', not {self.output!r}")
        if self.pool is not None:
            self._check_pool()
        if self.plane_sum not in (False, True) or (self.plane_sum and self.front != "and"):
            raise ValueError(f"MVAU plane_sum must be True (front 'and' only) or False, not "
                             f"{self.plane_sum!r} with front {self.front!r}")
        terms = self.terms
        if self.multipliers is None:
            object.__setattr__(self, "multipliers", terms)
        value = self.multipliers
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= terms:
            lanes = "m plane sums" if self.plane_sum else "m * n_in phi_k"
            raise ValueError(f"MVAU multipliers must be an integer in 1..{terms} ({lanes} per "
                             f"PE), not {value!r}")
        if value < terms and not self.shared_merge_fits:
            raise ValueError(f"MVAU multipliers={value} time-shares the merge, whose row "
                             f"sums up to {self.row_sum_bound} do not fit a "
                             f"{dsp.OPERAND_BITS}-bit DSP operand beside {self.coef_bits}-bit "
                             f"phi_k; use multipliers={terms}")

    @property
    def folds(self):
        return self.cols // self.simd

    @property
    def groups(self):
        return self.rows // self.pe

    @property
    def positions(self):
        """Input vectors per image: a convolution's output positions, else 1."""
        w = self.window
        return 1 if w is None else w.out_height * w.out_width

    @property
    def image_elements(self):
        """Input elements per image: the window's pixels times channels, else `cols`."""
        w = self.window
        return self.cols if w is None else w.height * w.width * w.channels

    def _check_pool(self):
        p, w = self.pool, self.window
        if w is None or self.output != "codes":
            raise ValueError("MVAU pool: only a convolution's codes are pooled")
        want = {"channels": self.rows, "simd": self.pe, "element_bits": self.n_out,
                "height": w.out_height, "width": w.out_width, "pad_code": 0}
        for name, value in want.items():
            if getattr(p, name) != value:
                raise ValueError(f"MVAU pool: {name} is {getattr(p, name)}, the unit's "
                                 f"output makes {value}")

    @property
    def out_positions(self):
        """Output vectors per image: positions after pooling."""
        p = self.pool
        return self.positions if p is None else p.out_height * p.out_width

    @property
    def out_shape(self):
        """(channels, height, width) of a convolution's output as the next layer sees
        it (pooled), or None for a fully connected layer."""
        if self.window is None:
            return None
        source = self.pool or self.window
        return (self.rows, source.out_height, source.out_width)

    @property
    def terms(self):
        """Lanes each PE merges: ``m * n_in`` phi_k, or ``m`` with `plane_sum`."""
        return merge_lanes(self.m, self.n_in, self.plane_sum)

    @property
    def row_sum_bound(self):
        """A lane's largest row sum: `cols` counted bits, or `cols` elements of
        ``n_in`` bits with `plane_sum`."""
        return lane_sum_bound(self.cols, self.n_in, self.plane_sum)

    @property
    def shared_merge_fits(self):
        """A time-shared merge's operands fit a DSP: phi_k and a lane's row sum."""
        return dsp.fits_dsp(signed(self.coef_bits), unsigned(self.row_sum_bound.bit_length()))

    @property
    def merge_steps(self):
        """Cycles each PE's merge takes per row: ``ceil(terms / multipliers)``."""
        return -(-self.terms // self.multipliers)

    @property
    def row_cycles(self):
        """Cycles per row group: its folds, or the time-shared merge if longer."""
        return max(self.folds, self.merge_steps)

    @property
    def input_in_memory(self):
        """True when the input vectors wait in a memory of ``2 * folds`` fold words (one
        a fold, read a cycle ahead like the weights) instead of ``2 * cols * n_in``
        flip-flops with a multiplexer or a rotation on every bit."""
        if self.input_buffer != "auto":
            return self.input_buffer == "memory"
        return self.folds > ROTATE_ABOVE_FOLDS and self.simd % self.in_beat == 0

    @property
    def input_memory_depth(self):
        """Fold words of the input memory: a side of ``2 ** ceil(log2(folds))`` words per
        vector, addressed by (side, fold)."""
        return 2 << max(1, (self.folds - 1).bit_length())

    @property
    def weight_rows(self):
        """Rows of the weight store: one per fold of every row group."""
        return self.groups * self.folds

    @property
    def weight_row_bits(self):
        """Bits of a weight store row: a fold's weights for every PE."""
        return self.pe * self.m * self.simd

    @property
    def weight_banks(self):
        """Banks of the weight store: ``weight_rows / weight_bank_rows``, rounded up."""
        rows = self.weight_bank_rows
        return 1 if rows is None else -(-self.weight_rows // rows)

    @property
    def weight_bank_depths(self):
        """Rows of each bank of the weight store (the last may hold fewer)."""
        rows = self.weight_bank_rows or self.weight_rows
        return [min(rows, self.weight_rows - b * rows) for b in range(self.weight_banks)]

    @property
    def read_stages(self):
        """Cycles from a fold's issue to its weights' row leaving the store: `READ_STAGES`,
        and one more for the banks' own registers."""
        return READ_STAGES + (self.weight_banks > 1)

    @property
    def cycles(self):
        """Cycles to compute one vector, once its input is buffered."""
        return self.groups * self.row_cycles

    @property
    def dsps(self):
        """Multipliers of the merge, over all PEs (the scores' scales not counted)."""
        return self.pe * self.multipliers if self.front == "and" else 0

    def processing_element(self):
        """One of the unit's `pe` processing elements."""
        return PAProcessingElement(m=self.m, n=self.n_in, simd=self.simd, front=self._front,
                                   coef_bits=self.coef_bits, acc_bits=self.acc_bits,
                                   multipliers=self.multipliers, cols=self.cols,
                                   plane_sum=self.plane_sum, spaced_rows=True)

    @property
    def _front(self):
        return Front.AND if self.front == "and" else Front.XNOR

    @property
    def latency(self):
        """Cycles from a row group's last fold leaving issue to its output beat entering
        the output FIFO: the memories' read and the issue registers, the PE
        (`PAProcessingElement.latency`), the row register and the encoder (or the
        scale's DSP block, or a register)."""
        pe = self._pe_latency
        if self.output == "codes":
            output = ActivationEncoder.LATENCY
        else:
            output = dsp.LATENCY if self.scale_bits else 1
        return self.read_stages + ISSUE_STAGES + pe + 1 + output

    @property
    def fifo_depth(self):
        """The output FIFO's depth: `fifo`, or `scheduled_fifo_depth`."""
        return self.scheduled_fifo_depth if self.fifo is None else self.fifo

    @property
    def vector_period(self):
        """The fewest cycles between two input vectors: their compute (`cycles`) or
        their input beats, whichever is longer (one buffer fills while the other is
        computed on)."""
        return max(self.cycles, self.cols // self.in_beat)

    @property
    def scheduled_fifo_depth(self):
        """The output FIFO's depth from the unit's static schedule, so that issue never
        waits for room when the consumer takes each beat as it comes (the next
        layer's window ring and input buffers take whole rows and vectors).

        A row group counts against the room from its last fold's issue until
        `FIFO_HOLD` cycles after its output enters the FIFO (`latency`). Row groups
        issue `row_cycles` apart, their folds back to back, and vectors at the
        fastest `vector_period` apart. The depth is the most row groups whose last
        folds issue within ``latency + FIFO_HOLD`` cycles, plus `FIFO_MARGIN`. Where
        rows issue back to back, one place fewer slows the unit
        (tests/test_fifo_depths.py, per unit and in a network); a time-shared merge
        of one row a fold may get a place or two more than it needs."""
        span = self.latency + FIFO_HOLD
        vectors = span // self.vector_period + 2
        ends = [v * self.vector_period + g * self.row_cycles + self.folds - 1
                for v in range(vectors) for g in range(self.groups)]
        most, oldest = 0, 0
        for k, end in enumerate(ends):
            while end - ends[oldest] >= span:
                oldest += 1
            most = max(most, k - oldest + 1)
        return most + FIFO_MARGIN

    @property
    def _pe_latency(self):
        return PAProcessingElement.latency_of(m=self.m, n=self.n_in, simd=self.simd,
                                              front=self._front, multipliers=self.multipliers,
                                              plane_sum=self.plane_sum)

    @property
    def in_layout(self):
        return data.ArrayLayout(unsigned(self.n_in), self.in_beat)

    @property
    def out_layout(self):
        if self.output == "codes":
            return data.ArrayLayout(unsigned(self.n_out), self.pe)
        return data.ArrayLayout(signed(self.logit_bits), self.pe)

    @property
    def segments(self):
        """The stores the load stream fills, in order."""
        found = []
        if self.front == "and":
            found.append(Segment("coefficients",
                                 data.ArrayLayout(signed(self.coef_bits), self.m * self.n_in), 1))
        found.append(Segment("weights", unsigned(self.weight_row_bits), self.weight_rows))
        if self.output == "codes":
            found.append(Segment("thresholds", data.ArrayLayout(
                threshold_layout(self.n_out, self.threshold_bits), self.pe), self.groups))
        elif self.scale_bits:
            found.append(Segment("scales", data.ArrayLayout(signed(self.scale_bits), self.pe),
                                 self.groups))
        return found

    def words_per_row(self, segment):
        return -(-segment.width // self.word_bits)

    @property
    def load_words(self):
        return sum(self.words_per_row(s) * s.depth for s in self.segments)

    def pack(self, rows):
        """Load-stream words from ``rows[segment name]``, a list of `depth` row values."""
        return pack_segments(self.segments, rows, self.word_bits)


def pack_segments(segments, rows, word_bits):
    """Load-stream words for `segments` from ``rows[segment name]`` (a list of `depth`
    row values each): every row in ``ceil(width / word_bits)`` words, lowest first."""
    words = []
    mask = (1 << word_bits) - 1
    for segment in segments:
        values = rows[segment.name]
        if len(values) != segment.depth:
            raise ValueError(f"{segment.name}: {len(values)} rows given, the unit holds "
                             f"{segment.depth}")
        per_row = -(-segment.width // word_bits)
        for value in values:
            bits = segment.row_bits(value)
            words += [(bits >> (k * word_bits)) & mask for k in range(per_row)]
    return words


class MatrixVectorUnit(wiring.Component):
    """Folded matrix-vector product with thresholds (or scores) and run-time weights.

    The input vector is buffered (two ``cols * n_in``-bit ping-pong buffers), then the unit
    issues ``rows/pe * cols/simd`` folds to `pe` processing elements, reading
    weights from a `lib.memory` store. Thresholds and scales come from stores
    addressed by the output row group. Every store is written through `load`
    before the first vector; the bitstream holds no weights.

    Members
    -------
    i : In(stream.Signature(config.in_layout))
        ``in_beat`` input elements (their binary planes) per beat.
    o : Out(stream.Signature(config.out_layout))
        ``pe`` output rows per beat, row groups in order.
    load : In(stream.Signature(unsigned(word_bits)))
        The stores' rows in `MVAUConfig.segments` order (see `MVAUConfig.pack`).
    load_restart : In(1)
        Forget what was loaded; the next words start again at the first store.
    loaded : Out(1)
        Every store has been written; inputs are accepted only then.

    Throughput one vector per ``max(cycles, cols / in_beat)`` cycles: one
    buffer fills while the other is computed on. The PEs and the encoder never
    stall; folds issue while the output FIFO has room for all in flight.
    """

    def __init__(self, config):
        if not isinstance(config, MVAUConfig):
            raise TypeError(f"config must be an MVAUConfig, not {config!r}")
        self.config = config
        super().__init__({
            "i": In(stream.Signature(config.in_layout)),
            "o": Out(stream.Signature(config.out_layout)),
            "load": In(stream.Signature(unsigned(config.word_bits))),
            "load_restart": In(1),
            "loaded": Out(1),
        })

    def elaborate(self, platform):
        cfg = self.config
        m = Module()
        stores = self._loader(m, family_of(platform))

        # Two input vectors, ping-pong: one fills while the other is computed on. `full`
        # marks a side from its last input to its last issued fold.
        full = Signal(2)
        fill_side = Signal()      # the side being filled
        compute_side = Signal()   # the side being computed on
        fire = Signal()           # a fold issues this cycle
        m.d.comb += self.i.ready.eq(~full.bit_select(fill_side, 1) & self.loaded)
        take = self.i.valid & self.i.ready
        fold = Signal(range(cfg.folds))
        last = fold == cfg.folds - 1
        done = Signal()           # the vector's last fold issues this cycle
        if cfg.input_in_memory:
            planes, filled = self._input_memory(m, take, fill_side, compute_side, fold)
        else:
            planes, filled = self._input_registers(m, take, full, fill_side, compute_side,
                                                   fire, fold)
        with m.If(filled):
            m.d.sync += fill_side.eq(~fill_side)

        # Issue: fold f of row group r reads weights row r * folds + f. The PEs and
        # the encoder never stall (no clock-enable fanout, no ready chain across
        # layers): a fold issues only while the output FIFO has room for every
        # row group already in flight (credits).
        pes = [cfg.processing_element() for _ in range(cfg.pe)]
        for p, pe in enumerate(pes):
            m.submodules[f"pe{p}"] = pe
        fifo = m.submodules.fifo = SyncFIFOBuffered(width=cfg.out_layout.size,
                                                   depth=cfg.fifo_depth)
        in_flight = Signal(range(fifo.depth + 1))
        address = Signal(range(cfg.weight_rows))
        # Room is judged a cycle early, with one slot of margin for the fold
        # issued meanwhile, so `fire` is two flip-flops and a gate (timing).
        room = Signal()
        # A time-shared merge longer than the row: wait `gap` cycles after each row's
        # last fold, so that rows reach the PEs `merge_steps` cycles apart.
        gap = cfg.merge_steps - cfg.folds
        idle = Const(1)
        if gap > 0:
            wait = Signal(range(gap + 1))
            idle = wait == 0
            with m.If(fire & last):
                m.d.sync += wait.eq(gap)
            with m.Elif(~idle):
                m.d.sync += wait.eq(wait - 1)
        m.d.comb += fire.eq(full.bit_select(compute_side, 1) & room & idle)
        m.d.sync += [in_flight.eq(in_flight + (fire & last) - fifo.w_en),
                     room.eq(fifo.level + in_flight < fifo.depth - 1)]
        # The read address is the `address` register itself: the row of the fold issued
        # this cycle comes out the cycle after (`READ_STAGES`). The next fold's address,
        # an adder and a multiplexer on `fire` in front of the read port, then the route
        # to block RAMs spread over the chip, was CNV-W1A1's critical path on ECP5
        # (16.6 ns, 11.4 of it one route).
        weights = self._weight_row(m, stores["weights"], address)
        with m.If(fire):
            m.d.sync += [address.eq(Mux(address == cfg.weight_rows - 1, 0, address + 1)),
                         fold.eq(Mux(last, 0, fold + 1))]
            with m.If(address == cfg.weight_rows - 1):
                m.d.comb += done.eq(1)
                m.d.sync += compute_side.eq(~compute_side)
        # A side is full from its last input to its last issued fold.
        for k in range(2):
            with m.If(filled & (fill_side == k)):
                m.d.sync += full[k].eq(1)
            with m.Elif(done & (compute_side == k)):
                m.d.sync += full[k].eq(0)
        # ISSUE_STAGES registers between the block RAM (and the fold multiplexer) and
        # the PEs. The first can sit by the block RAM: its output is slow (5.8 ns clock
        # to out on ECP5) and far from the PEs, and the two together, 9.6 ns with the
        # routing, were the PA MLP's critical path with one register.
        issued = {"valid": fire, "last": last}
        if not cfg.input_in_memory:
            issued["planes"] = planes
        for k in range(cfg.read_stages):
            issued = {name: stage(m, value, 1, f"read{k}_{name}")
                      for name, value in issued.items()}
            # (The input memory's planes come out the cycle after their fold issues.)
            issued.setdefault("planes", planes)
        issued["weights"] = weights
        for k in range(ISSUE_STAGES):
            issued = {name: stage(m, value, 1, f"issued{k}_{name}")
                      for name, value in issued.items()}
        lane = cfg.m * cfg.simd
        for p, pe in enumerate(pes):
            m.d.comb += [pe.i.valid.eq(issued["valid"]),
                         pe.i.payload.w.eq(issued["weights"][p * lane:(p + 1) * lane]),
                         pe.i.payload.x.eq(issued["planes"]),
                         pe.i.payload.last.eq(issued["last"]),
                         pe.o.ready.eq(1)]
            if cfg.front == "and":
                m.d.comb += pe.coef.eq(stores["coefficients"])

        # Output: row group g's accumulators and its thresholds or scales, read one
        # cycle ahead like the weights, registered together.
        group = Signal(range(cfg.groups))
        taken = pes[0].o.valid
        next_group = Mux(taken, Mux(group == cfg.groups - 1, 0, group + 1), group)
        m.d.sync += group.eq(next_group)
        table = None
        if cfg.output == "codes" or cfg.scale_bits:
            table = registered_read(m, stores["thresholds" if cfg.output == "codes"
                                           else "scales"], next_group, "table_row")
        row_valid = Signal()
        row_acc = Signal(data.ArrayLayout(signed(cfg.acc_bits), cfg.pe))
        m.d.sync += [row_valid.eq(taken)] + [row_acc[p].eq(pe.o.payload)
                                              for p, pe in enumerate(pes)]
        if table is not None:
            row_table = Signal.like(table)
            m.d.sync += row_table.eq(table)
        if cfg.output == "codes":
            encoder = m.submodules.encoder = ActivationEncoder(
                channels=cfg.pe, n=cfg.n_out, acc_bits=cfg.acc_bits,
                threshold_bits=cfg.threshold_bits)
            m.d.comb += [encoder.i.valid.eq(row_valid), encoder.i.payload.acc.eq(row_acc),
                         encoder.i.payload.channel.eq(row_table), encoder.o.ready.eq(1),
                         fifo.w_en.eq(encoder.o.valid), fifo.w_data.eq(encoder.o.payload)]
        else:
            scores = Signal(cfg.out_layout)
            if cfg.scale_bits:
                # Each scaled score in a DSP block with its own registers: multiplied in
                # the fabric between two registers, the score layer's products were the
                # digits XNOR MLP's critical path (9.4 ns, 2.5 of routing each way).
                m.d.comb += [scores[p].eq(registered_product(m, platform, row_acc[p],
                                                             row_table[p], 1, f"score{p}"))
                             for p in range(cfg.pe)]
                delay = dsp.LATENCY
            else:
                m.d.sync += [scores[p].eq(row_acc[p]) for p in range(cfg.pe)]
                delay = 1
            score_valid = row_valid
            for k in range(delay):
                score_valid = stage(m, score_valid, 1, f"score_valid{k}")
            m.d.comb += [fifo.w_en.eq(score_valid), fifo.w_data.eq(scores)]
        m.d.comb += [self.o.valid.eq(fifo.r_rdy), self.o.payload.eq(fifo.r_data),
                     fifo.r_en.eq(self.o.ready)]
        return m

    def _weight_row(self, m, store, address):
        """The weights' row at `address` (a register), `MVAUConfig.read_stages` cycles
        later. Banks (`MVAUConfig.weight_bank_rows`): each bank's row goes into a
        register of its own, which the placer can keep by the bank's block RAMs (their
        output is slow, 5.8 ns clock to out on ECP5), and the registers are ORed, each
        gated by a flag (the address's bank, delayed alongside) saying whether the row
        was the bank's: CNV-W1A1's conv5 read its 36 block RAMs into one multiplexer
        (15.5 ns, 6.1 of it the route from the farthest). (Zeroing the registers
        themselves, a synchronous reset, mapped the same logic; yosys 0.70's ABC9 then
        stopped without a word on a small network, or failed an assertion on CNV,
        depending on how the OR was written.)"""
        cfg = self.config
        if cfg.weight_banks == 1:
            return registered_read(m, store, address, "weight_row")
        bits = cfg.weight_bank_rows.bit_length() - 1
        row = 0
        for b, bank in enumerate(store):
            read = registered_read(m, bank, address[:bits], f"bank{b}_row")
            kept = Signal.like(read, name=f"bank{b}_kept")
            hit = [Signal(name=f"bank{b}_hit{k}") for k in range(2)]
            m.d.sync += [hit[0].eq(address[bits:] == b), hit[1].eq(hit[0]), kept.eq(read)]
            hit = hit[1]
            row = row | Mux(hit, kept, 0)
        return row

    def _input_registers(self, m, take, full, fill_side, compute_side, fire, fold):
        """Two ``cols * n_in``-bit registers; returns the fold's planes (element s's
        plane j at bit ``j * simd + s``) as the PEs take them the cycle a fold issues,
        and whether this cycle takes the vector's last beat."""
        cfg = self.config
        # Element e's planes sit at bits [e*n_in, (e+1)*n_in).
        buffers = [Signal(cfg.cols * cfg.n_in, name=f"buffer{k}") for k in range(2)]
        beat = Signal(range(cfg.cols // cfg.in_beat))
        # The word being filled follows the payload every cycle until its beat is taken
        # (the beat then moves on, or the buffer becomes full), so the buffers'
        # enables are its `full` flip-flops (and the beat): the producer's valid and the
        # `loaded` in `i.ready`, gated into 2 * cols * n_in enables, were the PA MLP's
        # critical path on ECP5. Nothing reads a buffer that is not full, so the other
        # buffer, when empty too, may follow the payload as well.
        # Above `ROTATE_ABOVE_FOLDS` folds, the buffer being computed on rotates a fold
        # at each issue, back to where it was after a row group: the PEs read its low
        # bits. A fold multiplexer instead (the fold counter selecting one of 64 folds
        # of the head's 2,560 buffered bits) was the digits CNNs' critical path on ECP5.
        rotate = cfg.folds > ROTATE_ABOVE_FOLDS
        fold_bits = cfg.simd * cfg.n_in
        for k, buffer in enumerate(buffers):
            with m.If(~full[k]):
                m.d.sync += buffer.word_select(beat, cfg.in_beat * cfg.n_in).eq(self.i.payload)
            if rotate:
                with m.Elif(fire & (compute_side == k)):
                    m.d.sync += buffer.eq(buffer.rotate_right(fold_bits))
        filled = Signal()
        with m.If(take):
            with m.If(beat == cfg.cols // cfg.in_beat - 1):
                m.d.comb += filled.eq(1)
                m.d.sync += beat.eq(0)
            with m.Else():
                m.d.sync += beat.eq(beat + 1)
        source = Mux(compute_side, buffers[1], buffers[0])
        # A signal, not the expression: each of the fold's bits that the PEs read would
        # otherwise carry its own copy of the multiplexers into the netlist.
        piece = Signal(fold_bits, name="fold_word")
        m.d.comb += piece.eq(source[:fold_bits] if rotate else source.word_select(fold, fold_bits))
        return self._planes(piece), filled

    def _input_memory(self, m, take, fill_side, compute_side, fold):
        """A memory of fold words, a side of them per vector (address: side, fold). Input
        beats gather into a fold word, written with its last beat (the side is full
        the cycle after, as a register buffer would be: one cycle later, and a unit as
        fast as its input lost a cycle a vector); the read address is the fold and
        side being issued, registers, as the weights' is, so the fold's planes come
        out with its weights, the cycle after it issues.
        Returns the planes and whether this cycle takes the vector's last beat."""
        cfg = self.config
        fold_bits = cfg.simd * cfg.n_in
        beat_bits = cfg.in_beat * cfg.n_in
        parts = cfg.simd // cfg.in_beat
        fold_width = max(1, (cfg.folds - 1).bit_length())
        # (The two sides: a row is never read while it is written.)
        store = m.submodules.input_store = uncontended_memory(unsigned(fold_bits),
                                                              cfg.input_memory_depth)
        write = store.write_port()
        part = Signal(range(parts))
        word = Signal(fold_width)
        filled = Signal()
        # The earlier parts of the word wait in `gather`, each following the payload
        # until it is taken.
        data = self.i.payload.as_value()
        if parts > 1:
            gather = Signal(fold_bits - beat_bits)
            with m.If(part != parts - 1):
                m.d.sync += gather.word_select(part, beat_bits).eq(data)
            data = Cat(gather, data)
        m.d.comb += [write.addr.eq(Cat(word, fill_side)), write.data.eq(data)]
        with m.If(take):
            m.d.sync += part.eq(part + 1)
            with m.If(part == parts - 1):
                m.d.comb += write.en.eq(1)
                m.d.sync += [part.eq(0), word.eq(word + 1)]
                with m.If(word == cfg.folds - 1):
                    m.d.comb += filled.eq(1)
                    m.d.sync += word.eq(0)
        read = registered_read(m, store, Cat(fold.as_unsigned()[:fold_width], compute_side),
                               "fold_word")
        return self._planes(read), filled

    def _planes(self, piece):
        """A fold word (element s's planes at bits [s*n_in, (s+1)*n_in)) in the PEs'
        order: plane j of element s at bit ``j * simd + s``."""
        cfg = self.config
        return Cat(piece[s * cfg.n_in + j] for j in range(cfg.n_in) for s in range(cfg.simd))

    def _loader(self, m, family):
        """Write the load stream's words into the stores; return them by name. Every
        store is written only while the unit is loaded, when nothing reads it; the
        tables go to block RAM where `family` says so (`Family.tables_in_block_ram`)."""
        cfg = self.config
        word = cfg.word_bits
        segments = cfg.segments
        stores = {}
        for segment in segments:
            if segment.name == "coefficients":
                stores[segment.name] = Signal(segment.shape, name="coefficients")
            else:
                # Weights always in block RAM, whose address register sits in the
                # block: a shallow store (10 rows) became LUT RAM, and the next-fold
                # address fanned out to every LUT RAM cell (60 MHz on ECP5). They are
                # written only while the unit is loaded, when nothing issues.
                if segment.name != "weights":
                    store = m.submodules[segment.name] = uncontended_memory(
                        segment.shape, segment.depth,
                        block=family is not None and family.tables_in_block_ram)
                elif cfg.weight_banks == 1:
                    store = m.submodules.weights = uncontended_memory(
                        segment.shape, segment.depth, block=True)
                else:
                    store = [uncontended_memory(segment.shape, depth, block=True)
                             for depth in cfg.weight_bank_depths]
                    for b, bank in enumerate(store):
                        m.submodules[f"weights_bank{b}"] = bank
                stores[segment.name] = store
        widest = max(cfg.words_per_row(s) for s in segments)
        row = Signal(widest * word)
        index = Signal(range(len(segments)))
        address = Signal(range(max(s.depth for s in segments)))
        count = Signal(range(widest))
        # A row is written two cycles after its last word is taken, from registers: the
        # counters stay beside the load stream and only registers cross the chip to the
        # block RAMs (taking a word and steering its address into a far store was the
        # PA MLP's critical path on ECP5, 9.9 ns, 85% of it routing). By then `row`
        # holds the whole row, the last word included.
        filled = Signal()
        taken = Signal(len(segments))      # the row's last word taken, a cycle ago
        write = Signal(len(segments))
        taken_address = Signal.like(address)
        write_address = Signal.like(address)
        m.d.comb += self.load.ready.eq(~filled)
        take = self.load.valid & self.load.ready
        m.d.sync += [taken.eq(0), taken_address.eq(address),
                     write.eq(taken), write_address.eq(taken_address)]
        # The word at `count` follows the payload until it is taken (`count` then moves
        # on), so the row's enables are `count`'s decode alone: the load stream's valid
        # gated into every row bit's enable, across the chip to the far layers, was the
        # PA MLP's critical path on ECP5 (9.20 ns, 7.97 of it routing). The payload and
        # `count` are registered in the unit first, so that the row's fan-out starts
        # beside it: the load chain's register to the row registers was CNV-W1A1's
        # critical path on the ULX3S (12.52 ns, 12.00 of it routing). The row is
        # written the cycle after its last word is in it, before word 0 follows again.
        payload = Signal(word, name="load_payload")
        at = Signal.like(count, name="load_at")
        m.d.sync += [payload.eq(self.load.payload), at.eq(count)]
        m.d.sync += row.word_select(at, word).eq(payload)
        for k, segment in enumerate(segments):
            words = cfg.words_per_row(segment)
            value = row[:segment.width]
            if segment.name == "coefficients":
                with m.If(write[k]):
                    m.d.sync += stores[segment.name].as_value().eq(value)
            elif segment.name == "weights" and cfg.weight_banks > 1:
                bits = cfg.weight_bank_rows.bit_length() - 1
                for b, bank in enumerate(stores[segment.name]):
                    port = bank.write_port()
                    m.d.comb += [port.addr.eq(write_address[:bits]), port.data.eq(value),
                                 port.en.eq(write[k] & (write_address[bits:] == b))]
            else:
                port = stores[segment.name].write_port()
                m.d.comb += [port.addr.eq(write_address), port.data.eq(value),
                             port.en.eq(write[k])]
            with m.If(take & (index == k)):
                with m.If(count == words - 1):
                    m.d.sync += [count.eq(0), taken[k].eq(1)]
                    with m.If(address == segment.depth - 1):
                        m.d.sync += address.eq(0)
                        if k == len(segments) - 1:
                            m.d.sync += filled.eq(1)
                        else:
                            m.d.sync += index.eq(k + 1)
                    with m.Else():
                        m.d.sync += address.eq(address + 1)
                with m.Else():
                    m.d.sync += count.eq(count + 1)
        # Loaded once the last row is written: `filled` a cycle late, as `write` is
        # (else the row before the last, written as its last word comes, would do).
        written = Signal()
        m.d.sync += written.eq(filled)
        with m.If(write[-1] & written):
            m.d.sync += self.loaded.eq(1)
        with m.If(self.load_restart):
            m.d.sync += [self.loaded.eq(0), filled.eq(0), written.eq(0), index.eq(0),
                         address.eq(0), count.eq(0)]
        return stores
