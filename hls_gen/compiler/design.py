"""What the flow's steps ask of a kind of design.

The build flow (`bitfab.hls_gen.compiler.flow`) is one list of steps for every
model; what differs between a network of matrix-vector units, a convolution
engine and the kinds to come (CNN pipelines, graphs of layers, attention
units) is a `DesignKind`. Each kind is one module of this package
(`network`, `conv_engine`) and is listed in `bitfab.hls_gen.compiler.kinds`.

Every method takes and returns JSON-able values (dicts as the artifacts hold
them) or hardware objects, so each step's result is a file in its subfolder
and any step can run again from the files alone.
"""

__all__ = ["DesignKind"]


def report_node(name, kind, cycles_per_image, fifo_depth, estimate):
    """One row of a report's ``nodes``: `estimate` is the node's row of the plan's
    estimate (None where it has none), of which the row keeps the four resources."""
    return {"name": name, "kind": kind, "cycles_per_image": cycles_per_image,
            "fifo_depth": fifo_depth,
            "estimate": {k: (estimate or {}).get(k) for k in ("luts", "ffs", "brams", "dsps")}}


class DesignKind:
    """A kind of design the flow builds. Subclasses implement every method.

    Attributes
    ----------
    name : str
        The kind's name, recorded in ``golden.json`` (its ``kind`` field; a
        network's golden model, written before kinds had names, has none).
    toplevel : str
        The top module of the emitted Verilog, ``{toplevel}.v`` in ``emit_rtl/``.
    """

    name = None
    toplevel = None

    def accepts(self, model):
        """True for a model (PyTorch module, frozen golden model) of this kind."""
        raise NotImplementedError

    def accepts_golden(self, value):
        """True for a ``golden.json`` (as a dict) of this kind."""
        raise NotImplementedError

    def freeze(self, model, log):
        """The golden model of `model`, as ``golden.json`` holds it."""
        raise NotImplementedError

    def map_to_hw(self, golden, cfg, log):
        """The unfolded hardware (``hw.json``) for the golden model."""
        raise NotImplementedError

    def fold(self, hw, cfg, board, log, golden):
        """The plan (``plan.json``) of the unfolded hardware `hw` (``hw.json``) and the
        `golden` model (``golden.json``): folding, memories, widths and the resource
        estimate (``estimate.total``); raises `PlanError` naming the layer and the
        resource when it does not fit `board`."""
        raise NotImplementedError

    def design(self, plan):
        """The Amaranth component the plan describes (its ports are the stream bench's)."""
        raise NotImplementedError

    def core(self, plan):
        """The serial shell's core on the board: a function making it, or configs."""
        return lambda: self.design(plan)

    def load_words(self, golden, plan):
        """``weights.json``: {"word_bits": ..., "words": [...]}, the load stream."""
        raise NotImplementedError

    def case(self, golden, plan, cfg, count):
        """(case, items): the first `count` real inputs (None: the kind's default) and
        what the golden model says every output stream carries for them
        (`bitfab.sim.cases`)."""
        raise NotImplementedError

    def clock_mhz(self, cfg, board):
        """The design clock asked for (None: the board's)."""
        return cfg.clock_mhz

    def synth_options(self, plan, board):
        """Extra `build_bitstream` keywords (``overrides``, ``router``)."""
        return {}

    def report_layers(self, plan):
        """The report's ``layers`` rows."""
        raise NotImplementedError

    def report_nodes(self, plan):
        """The report's ``nodes``, for its page: per node of the plan, its ``name``,
        ``kind``, ``cycles_per_image`` and ``fifo_depth`` (None where it has none) and
        its ``estimate`` ({luts, ffs, brams, dsps}), as `report_node` makes them. Here:
        one node, the design, with the plan's estimate and schedule."""
        return [report_node(plan.get("layer", "design"), self.name,
                            plan.get("schedule_cycles_per_image"), None,
                            (plan.get("estimate") or {}).get("total"))]

    def report_extra(self, plan):
        """Fields the kind adds to the report."""
        return {}

    def format_layers(self, report):
        """Markdown lines of the report's layer table."""
        raise NotImplementedError
