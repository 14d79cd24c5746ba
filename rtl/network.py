"""A chain of matrix-vector units: the accelerator's datapath, with one weight port."""

from amaranth.hdl import (ClockSignal, Instance, Module, ResetInserter, ResetSignal,
                          Signal, unsigned)
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .convolution import ConvolutionUnit
from .mvau import MatrixVectorUnit, MVAUConfig
from .skid import SkidBuffer

__all__ = ["Network", "NetworkInstance", "instantiate_verilog", "load_chain", "load_latency"]


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
        All layers are loaded, at most `load_latency` cycles after the last word
        (see `load_chain`).
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
        self.load_latency = load_latency(len(layers))
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

        load_chain(m, units, self.load, self.load_restart, self.loaded, self.word_bits,
                   self.load_words)
        return m


def load_latency(units):
    """The most cycles from the last word taken by the port of a `load_chain` of `units`
    units to its `loaded`: a cycle into the chain, one a unit along it, two for
    the last unit's flag (its last word registered in the unit, its row written, then
    the flag) and one for its register in the flag chain."""
    return units + 5


def load_chain(m, units, load, load_restart, loaded, word_bits, words):
    """Wire the load port `load` (with `load_restart`, `loaded`) to `units`, each loaded in
    turn, in order, `words` words in all: every unit with a ``load`` stream,
    ``load_restart`` and ``loaded``, whose ``load.ready`` stays high until the cycle
    after its last word is taken (the loaders' `load_rows` and the matrix-vector
    unit's store writer: every word offered to a unit still loading is taken).

    Words pass from unit to unit along a chain of registers, one a unit, as a daisy
    chain: each register offers its word to its unit while the unit is ready and
    hands it to the next register otherwise. Every handshake stays between
    neighbours: the ready of one skid buffer fed by every unit's loader, the words'
    payload and valid fanned out to all of them, was the ResNet-20's critical path
    on the ULX3S (25.96 ns, 22.25 of it routing, across the die). The port takes
    `words` words and no more, counted at the chain's head; `loaded` is the
    units' flags ANDed along a chain of registers of its own (a unit's own flag is
    its register's only input from afar), so it rises `load_latency` cycles at most
    after the port's last word. `load_restart` empties both chains."""
    # The port's handshake stays out of the count through a skid buffer of its own,
    # emptied by a restart so that no word from before it is loaded after it.
    taking = SkidBuffer(unsigned(word_bits))
    m.submodules.loading = ResetInserter(load_restart)(taking)
    wiring.connect(m, wiring.flipped(load), taking.i)
    count = Signal(range(words + 1))
    m.d.comb += taking.o.ready.eq(count != words)
    with m.If(taking.o.valid & taking.o.ready):
        m.d.sync += count.eq(count + 1)
    valid, payload, done, chain = taking.o.valid & taking.o.ready, taking.o.payload, 1, []
    for k, unit in enumerate(units):
        held = Signal(name=f"load{k}_valid")
        word = Signal(word_bits, name=f"load{k}_payload")
        flag = Signal(name=f"loaded{k}")
        m.d.sync += [held.eq(valid), word.eq(payload), flag.eq(done & unit.loaded)]
        m.d.comb += [unit.load.valid.eq(held & unit.load.ready),
                     unit.load.payload.eq(word),
                     unit.load_restart.eq(load_restart)]
        valid, payload, done = held & ~unit.load.ready, word, flag
        chain += [held, flag]
    with m.If(load_restart):
        m.d.sync += [count.eq(0), *(r.eq(0) for r in chain)]
    m.d.comb += loaded.eq(done)


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
