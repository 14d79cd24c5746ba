"""A chain of matrix-vector units: the accelerator's datapath, with one weight port."""

from amaranth.hdl import (Cat, ClockSignal, Instance, Module, Mux, ResetInserter, ResetSignal,
                          Signal, unsigned)
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .convolution import ConvolutionUnit
from .mvau import MatrixVectorUnit, MVAUConfig
from .skid import SkidBuffer

__all__ = ["Network", "NetworkInstance", "instantiate_verilog", "load_chain"]


class Network(wiring.Component):
    """Layers in sequence, each an `MVAUConfig`; a layer's ``pe`` is the next one's
    ``in_beat`` and its output planes the next one's input planes.

    Members
    -------
    i : In(stream.Signature(layers[0].in_layout))
        Input elements (pixels as bit planes), ``in_beat`` per beat, through a
        `SkidBuffer` (registered in both directions).
    o : Out(stream.Signature(layers[-1].out_layout))
        Class scores, ``pe`` per beat.
    load : In(stream.Signature(unsigned(word_bits)))
        Every layer's stores, layer after layer (`load_words` words in all),
        through a `SkidBuffer`.
    load_restart : In(1)
        Start loading again from the first layer's first store; words still
        held in the load skid buffer are dropped.
    loaded : Out(1)
        All layers are loaded: one cycle later, counted from the last word taken,
        than a lone unit's flag (the word passes the load skid buffer first).
    tap<k>_valid, tap<k>_payload : Out
        Layer k's output as it leaves the layer (valid marks a transfer), so a
        testbench can check every layer, not only the scores.
    """

    def __init__(self, layers):
        layers = list(layers)
        if not layers or not all(isinstance(c, MVAUConfig) for c in layers):
            raise TypeError(f"layers must be a non-empty list of MVAUConfig, not {layers!r}")
        for k, (a, b) in enumerate(zip(layers, layers[1:])):
            # A layer's outputs per image (rows at each position) are the next one's
            # input elements per image (its window's pixels, or its columns).
            if ((a.rows * a.out_positions, a.pe, a.n_out, a.output)
                    != (b.image_elements, b.in_beat, b.n_in, "codes")):
                raise ValueError(
                    f"layer {k + 1} does not take layer {k}'s output: outputs per image/pe/"
                    f"planes {a.rows * a.out_positions}/{a.pe}/{a.n_out} ({a.output}) "
                    f"vs inputs per image/in_beat/n_in {b.image_elements}/{b.in_beat}/"
                    f"{b.n_in}")
        words = {c.word_bits for c in layers}
        if len(words) != 1:
            raise ValueError(f"all layers must share one load word width, not {sorted(words)}")
        self.layers = layers
        self.word_bits = words.pop()
        members = {
            "i": In(stream.Signature(layers[0].in_layout)),
            "o": Out(stream.Signature(layers[-1].out_layout)),
            "load": In(stream.Signature(unsigned(self.word_bits))),
            "load_restart": In(1),
            "loaded": Out(1),
        }
        for k, c in enumerate(layers):
            members[f"tap{k}_valid"] = Out(1)
            members[f"tap{k}_payload"] = Out(c.out_layout)
        super().__init__(members)

    @property
    def load_words(self):
        return sum(c.load_words for c in self.layers)

    def elaborate(self, platform):
        m = Module()
        units = [MatrixVectorUnit(c) if c.window is None else
                 ConvolutionUnit(c.window, c) for c in self.layers]
        for k, unit in enumerate(units):
            m.submodules[f"layer{k}"] = unit
        # Inputs enter through a skid buffer: the producer's handshake (on a board, the
        # serial shell's state machine) stays out of the first layer's buffer enables,
        # which were the hidden layer's critical path on ECP5 once its products moved
        # into the DSP blocks.
        entry = m.submodules.entry = SkidBuffer(self.layers[0].in_layout)
        wiring.connect(m, wiring.flipped(self.i), entry.i)
        wiring.connect(m, entry.o, units[0].i)
        for a, b in zip(units, units[1:]):
            wiring.connect(m, a.o, b.i)
        wiring.connect(m, units[-1].o, wiring.flipped(self.o))
        for k, unit in enumerate(units):
            m.d.comb += [getattr(self, f"tap{k}_valid").eq(unit.o.valid & unit.o.ready),
                         getattr(self, f"tap{k}_payload").eq(unit.o.payload)]

        load_chain(m, units, self.load, self.load_restart, self.loaded, self.word_bits)
        return m


def load_chain(m, units, load, load_restart, loaded, word_bits):
    """Wire the load port `load` (with `load_restart`, `loaded`) to `units`, each loaded in
    turn, in order: every unit with a ``load`` stream, ``load_restart`` and ``loaded``."""
    # Words go to the first unit still loading, through a skid buffer of their own
    # (the producer's handshake into every layer's loader was the whole PA MLP's
    # critical path on ECP5 once the encoders were pipelined), emptied by a
    # restart so that no word from before it is loaded after it.
    loading = SkidBuffer(unsigned(word_bits))
    m.submodules.loading = ResetInserter(load_restart)(loading)
    wiring.connect(m, wiring.flipped(load), loading.i)
    # The unit taking words is a register (one bit a unit), the first unit not yet
    # loaded as of the cycle before: a chain of every layer's loaded flag into the
    # load handshake was a CNN's critical path on ECP5. A unit's own flag still
    # gates its valid, so no word reaches a loaded unit in the cycle its successor
    # waits to be selected. The ready is one expression, not an If per unit:
    # Amaranth writes that as an `always @*` whose inputs are all constant from
    # time 0 until the first unit is loaded, and Icarus never ran it, so the ready
    # stayed X, the skid buffer never advanced and the first unit took its first
    # word again every cycle.
    first_unloaded, earlier_loaded = [], 1
    for unit in units:
        first_unloaded.append(earlier_loaded & ~unit.loaded)
        earlier_loaded = earlier_loaded & unit.loaded
    selected = Signal(len(units), init=1)
    m.d.sync += selected.eq(Mux(load_restart, 1, Cat(*first_unloaded)))
    ready = 0
    for k, unit in enumerate(units):
        taking = selected[k] & ~unit.loaded
        m.d.comb += [unit.load.valid.eq(loading.o.valid & taking),
                     unit.load.payload.eq(loading.o.payload),
                     unit.load_restart.eq(load_restart)]
        ready = ready | (taking & unit.load.ready)
    m.d.comb += [loading.o.ready.eq(ready), loaded.eq(earlier_loaded)]


def instantiate_verilog(component, platform):
    """The `elaborate` of a component already written to Verilog as module
    ``component.module``: an `Instance` of it, by name, its members as ports."""
    m = Module()
    ports = {"i_clk": ClockSignal(), "i_rst": ResetSignal()}
    for path, member, value in component.signature.flatten(component):
        direction = "i" if member.flow == wiring.In else "o"
        ports[f"{direction}_{'__'.join(map(str, path))}"] = value
    m.submodules.network = Instance(component.module, **ports)
    return m


class NetworkInstance(Network):
    """A `Network` of `layers` already written to Verilog as module `module` (the build's
    ``network.v``), instantiated by name: the same members, none of the minutes
    that converting a whole network takes. Its Verilog must be given to the
    simulator or synthesiser beside this component's."""

    def __init__(self, layers, module="network"):
        super().__init__(layers)
        self.module = module

    elaborate = instantiate_verilog
