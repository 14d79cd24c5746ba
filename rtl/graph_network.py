"""A network that is a graph: units connected stream by stream, by tensor name."""

from dataclasses import dataclass

from amaranth.hdl import Module, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .add_streams import AddConfig, AddStreams
from .affine import AffineConfig, ChannelAffine
from .broadcast import Broadcast
from .concat import ChannelConcat
from .select import ChannelSelect
from .split import ChannelSplit
from .global_sum import GlobalSum, GlobalSumConfig
from .convolution import ConvolutionUnit
from .mvau import MatrixVectorUnit, MVAUConfig
from .network import instantiate_verilog, load_chain, load_latency
from .pool import MaxPool
from .queue import StreamQueue
from .skid import SkidBuffer
from .threshold_unit import ThresholdConfig, ThresholdUnit
from .window import WindowConfig

__all__ = ["UnitSpec", "GraphNetwork", "GraphNetworkInstance", "stream_layouts",
           "UNIT_CONFIGS", "LOADED"]

UNIT_KINDS = ("layer", "affine", "threshold", "add", "pool", "globalsum", "fork", "split",
              "select", "concat", "queue")
#: Each kind's config class (None: the unit takes `UnitSpec.shape` instead).
UNIT_CONFIGS = {"layer": MVAUConfig, "affine": AffineConfig, "threshold": ThresholdConfig,
                "add": AddConfig, "pool": WindowConfig, "globalsum": GlobalSumConfig}
#: Kinds whose stores are loaded at run time, through the network's load port.
LOADED = ("layer", "affine", "threshold")


@dataclass(frozen=True)
class UnitSpec:
    """One unit of a `GraphNetwork`: what it is, the streams it reads and writes.

    Parameters
    ----------
    name : str
        The unit's name (its submodule's).
    kind : str
        ``"layer"`` (a `MatrixVectorUnit`, or a `ConvolutionUnit` where its config has
        a window), ``"affine"`` (`ChannelAffine`), ``"threshold"`` (`ThresholdUnit`),
        ``"add"`` (`AddStreams`), ``"pool"`` (`MaxPool`), ``"globalsum"``
        (`GlobalSum`), ``"fork"`` (`Broadcast`), ``"split"`` (`ChannelSplit`),
        ``"select"`` (`ChannelSelect`),
        ``"concat"`` (`ChannelConcat`) or ``"queue"`` (`StreamQueue`).
    inputs, outputs : tuple of str
        Stream names: each stream has one writer and one reader (a fork makes copies),
        the network's input and output streams included.
    config : MVAUConfig, AffineConfig, ThresholdConfig, AddConfig, WindowConfig,
            GlobalSumConfig or None
        The unit's, by kind (`UNIT_CONFIGS`).
    shape : shape-like or None
        The payload of a fork's, a split's, a concatenation's or a queue's streams.
    beats : tuple of int
        A concatenation's beats per position of each input; a split's of each output;
        a select's (beats per position, first beat passed, past the last).
    depth : int
        A queue's.
    """

    name: str
    kind: str
    inputs: tuple
    outputs: tuple
    config: MVAUConfig | None = None
    shape: object = None
    beats: tuple = ()
    depth: int = 0

    def __post_init__(self):
        if self.kind not in UNIT_KINDS:
            raise ValueError(f"unit {self.name}: kind must be one of {UNIT_KINDS}, not "
                             f"{self.kind!r}")
        object.__setattr__(self, "inputs", tuple(self.inputs))
        object.__setattr__(self, "outputs", tuple(self.outputs))
        want = UNIT_CONFIGS.get(self.kind)
        if want is not None and not isinstance(self.config, want):
            raise ValueError(f"unit {self.name}: a {self.kind} unit needs a "
                             f"{want.__name__}, not {self.config!r}")

    def component(self):
        if self.kind == "layer":
            c = self.config
            return MatrixVectorUnit(c) if c.window is None else ConvolutionUnit(c.window, c)
        if self.kind in ("affine", "threshold", "add", "pool", "globalsum"):
            make = {"affine": ChannelAffine, "threshold": ThresholdUnit, "add": AddStreams,
                    "pool": MaxPool, "globalsum": GlobalSum}[self.kind]
            return make(self.config)
        if self.kind == "fork":
            return Broadcast(self.shape, len(self.outputs))
        if self.kind == "concat":
            return ChannelConcat(self.shape, self.beats)
        if self.kind == "split":
            return ChannelSplit(self.shape, self.beats)
        if self.kind == "select":
            return ChannelSelect(self.shape, *self.beats)
        return StreamQueue(self.shape, self.depth)

    def ports(self, unit):
        """(input streams, output streams) of `unit`, this spec's component, in order."""
        if self.kind in ("fork", "split"):
            return [unit.i], [getattr(unit, f"o{k}") for k in range(len(self.outputs))]
        if self.kind in ("concat", "add"):
            return [getattr(unit, f"i{k}") for k in range(len(self.inputs))], [unit.o]
        return [unit.i], [unit.o]

    def layouts(self):
        """(the payload of each input stream, of each output stream)."""
        c = self.config
        if self.kind in ("layer", "affine", "threshold", "globalsum"):
            return [c.in_layout], [c.out_layout]
        if self.kind == "add":
            return [c.in_layout(k) for k in range(len(self.inputs))], [c.out_layout]
        if self.kind == "pool":
            return [c.layout], [c.layout]
        return [self.shape] * len(self.inputs), [self.shape] * len(self.outputs)


def stream_layouts(units):
    """Each stream's payload ({name: layout}), from the `UnitSpec`s that read and write
    it; `ValueError` where the two ends of a stream disagree."""
    layouts = {}
    for unit in units:
        inputs, outputs = unit.layouts()
        for names, shapes in ((unit.inputs, inputs), (unit.outputs, outputs)):
            for name, shape in zip(names, shapes):
                if name in layouts and layouts[name] != shape:
                    raise ValueError(f"stream {name}: unit {unit.name} takes {shape}, its "
                                     f"other end {layouts[name]}")
                layouts[name] = shape
    return layouts


class GraphNetwork(wiring.Component):
    """Units wired by stream name: the accelerator of a network with forks and joins.

    Parameters
    ----------
    units : list of UnitSpec
        In an order where every stream is written before it is read.
    input, output : str
        The streams the network takes and gives.
    taps : dict of str to str
        Tap name -> a stream to watch: its transfers appear on ``<tap>_valid`` and
        ``<tap>_payload``, so a testbench can check every tensor of the graph.

    Members
    -------
    i : In(stream.Signature(...))
        The input stream (the first layers' ``in_layout``), through a `SkidBuffer`.
    o : Out(stream.Signature(...))
        The output stream.
    load, load_restart, loaded :
        Every loaded unit's stores (layers, affine and threshold units), unit after
        unit in `units` order (as `Network`'s).
    <tap>_valid, <tap>_payload : Out

    Raises
    ------
    ValueError
        A stream written twice, read twice, read and never written, or written and
        never read; layers with different load word widths.
    """

    def __init__(self, units, input, output, taps=None):
        units = list(units)
        if not units or not all(isinstance(u, UnitSpec) for u in units):
            raise TypeError(f"units must be a non-empty list of UnitSpec, not {units!r}")
        writers, readers = {input: None}, {output: None}
        for unit in units:
            for name in unit.outputs:
                if name in writers:
                    raise ValueError(f"stream {name} is written twice (unit {unit.name})")
                writers[name] = unit
            for name in unit.inputs:
                if name in readers:
                    raise ValueError(f"stream {name} is read twice (unit {unit.name}); a "
                                     f"fork gives each reader its own")
                if name not in writers:
                    raise ValueError(f"unit {unit.name} reads stream {name} before any unit "
                                     f"writes it")
                readers[name] = unit
        unread = sorted(set(writers) - set(readers))
        if unread or output not in writers:
            raise ValueError(f"streams written and never read: {unread}" if unread else
                             f"the output stream {output} is never written")
        loaded = [u for u in units if u.kind in LOADED]
        words = {u.config.word_bits for u in loaded}
        if len(words) != 1:
            raise ValueError(f"all layers must share one load word width, not {sorted(words)}")
        self.units, self.input, self.output = units, input, output
        self.taps = dict(taps or {})
        self.word_bits = words.pop()
        self.load_latency = load_latency(len(loaded))
        self.layouts = stream_layouts(units)
        members = {
            "i": In(stream.Signature(self.layouts[input])),
            "o": Out(stream.Signature(self.layouts[output])),
            "load": In(stream.Signature(unsigned(self.word_bits))),
            "load_restart": In(1),
            "loaded": Out(1),
        }
        for tap, name in self.taps.items():
            if name not in self.layouts:
                raise ValueError(f"tap {tap} watches stream {name}, which no unit writes")
            members[f"{tap}_valid"] = Out(1)
            members[f"{tap}_payload"] = Out(self.layouts[name])
        super().__init__(members)


    @property
    def load_words(self):
        return sum(u.config.load_words for u in self.units if u.kind in LOADED)

    def elaborate(self, platform):
        m = Module()
        ends = {}                # stream name -> (writer port, reader port)
        entry = m.submodules.entry = SkidBuffer(self.layouts[self.input])
        wiring.connect(m, wiring.flipped(self.i), entry.i)
        ends[self.input] = [entry.o, None]
        layers = []
        for spec in self.units:
            unit = spec.component()
            m.submodules[spec.name] = unit
            inputs, outputs = spec.ports(unit)
            for name, port in zip(spec.inputs, inputs):
                ends[name][1] = port
            for name, port in zip(spec.outputs, outputs):
                ends[name] = [port, None]
            if spec.kind in LOADED:
                layers.append(unit)
        ends[self.output][1] = wiring.flipped(self.o)
        for name, (writer, reader) in ends.items():
            wiring.connect(m, writer, reader)
        for tap, name in self.taps.items():
            writer = ends[name][0]
            m.d.comb += [getattr(self, f"{tap}_valid").eq(writer.valid & writer.ready),
                         getattr(self, f"{tap}_payload").eq(writer.payload)]
        load_chain(m, layers, self.load, self.load_restart, self.loaded, self.word_bits,
                   self.load_words)
        return m


class GraphNetworkInstance(GraphNetwork):
    """A `GraphNetwork` already written to Verilog as module `module` (a build's
    ``network.v``), instantiated by name: the same members (its taps included),
    without converting the units again. Its Verilog goes to the simulator or
    synthesiser beside this component's."""

    def __init__(self, units, input, output, taps=None, module="network"):
        super().__init__(units, input, output, taps)
        self.module = module

    elaborate = instantiate_verilog
