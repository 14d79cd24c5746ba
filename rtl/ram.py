"""Block RAM stores whose reads never meet a write to the same row.

A memory's synchronous read port in Amaranth returns the old row when the same row
is written in the same cycle. ECP5's DP16KD and iCE40's SB_RAM40_4K give no such
guarantee between their two ports, so yosys builds it in logic beside every block
RAM (``emulate_read_first`` and ``emulate_transparency`` in its ``memory_libmap``):
the write delayed by a register of the row's width, a second register of that width,
an address comparator and a multiplexer of the row's width on the block RAM's
output. For CNV-W1A1's weight stores that was two flip-flops and a LUT4 per bit of
row (conv1's rows are 1,024 bits) and a LUT level on the block RAM's slow output.

The stores here are written while nothing reads them (weights: only while the unit
is being loaded) or never at a row being read (an input memory's two sides), so the
collision's result does not matter: yosys leaves it undefined, and builds nothing,
for a memory marked ``no_rw_check`` whose read register it merges into the block RAM
itself (``memory_dff``), which an asynchronous read port and a register after it
let it do. The register's row comes out a cycle after its address, as from a
synchronous port.
"""

from amaranth.hdl import Signal
from amaranth.lib import memory

__all__ = ["NO_RW_CHECK", "uncontended_memory", "registered_read"]

#: yosys's memory attribute: a read of a row being written may return anything.
NO_RW_CHECK = {"no_rw_check": 1}


def uncontended_memory(shape, depth, block=False):
    """An `amaranth.lib.memory.Memory` of `depth` rows of `shape`, zero at start, whose
    reads never meet a write to the row being read (`registered_read`); `block`: in
    block RAM, however shallow."""
    attrs = {**NO_RW_CHECK, **({"ram_style": "block"} if block else {})}
    return memory.Memory(shape=shape, depth=depth, init=[], attrs=attrs)


def registered_read(m, store, address, name):
    """Row `address` of `store` (an `uncontended_memory`) as a register, the cycle after:
    an asynchronous read port and the register yosys merges into the block RAM."""
    port = store.read_port(domain="comb")
    row = Signal.like(port.data, name=name)
    m.d.comb += port.addr.eq(address)
    m.d.sync += row.eq(port.data)
    return row
