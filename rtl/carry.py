"""ECP5 carry-chain cells (CCU2C), instantiated on ECP5 and modelled everywhere else.

A CCU2C is two chain halves. Each half has a 4-input LUT F(A, B, C, D) and carry
logic: S = F ^ CIN, COUT = F ? CIN : G, where the generate G is the LUT's own
C = D = 0 quarter as a function of A and B (yosys's `ccu2c_sim.vh`: a LUT2 on
INIT[3:0]). A half whose F is 0 for its inputs therefore passes CIN out as S and
starts a new carry G(A, B): one half ends one addition and begins the next.

`Chain` collects halves and emits them as CCU2C pairs: on an ECP5 platform as
`Instance("CCU2C")` primitives that nextpnr places on the carry chain, and
otherwise (simulation, Verilog for cocotb) as the same equations in logic, so a
testbench runs the very netlist that is placed. `tests/test_carry.py` proves the
model equal to yosys's simulation model of the primitive.
"""

from amaranth.hdl import Cat, Const, Instance, Mux, Signal, Value

from .families import family_of

__all__ = ["Chain", "ccu2c_model", "has_carry_chains", "lut", "lut_init"]


def has_carry_chains(platform):
    """True when elaborating for a family with CCU2C chains (ECP5: the ULX3S, ...)."""
    family = family_of(platform)
    return family is not None and family.carry_chains


def lut_init(function):
    """A LUT4's 16-bit INIT from `function(a, b, c, d) -> 0/1` (index d c b a)."""
    return sum((function(k & 1, k >> 1 & 1, k >> 2 & 1, k >> 3 & 1) & 1) << k for k in range(16))


def lut(init, ins):
    """A LUT of `init` (bit k: the output for inputs ``k``, ``ins[0]`` its low bit) as a
    value of `ins`, with the constant inputs folded into a smaller table: a simulation
    model of the cell, no bigger than the inputs it really reads."""
    ins = [Value.cast(v) for v in ins]
    free = [k for k, v in enumerate(ins) if not isinstance(v, Const)]
    fixed = sum((v.value & 1) << k for k, v in enumerate(ins) if isinstance(v, Const))
    table = [init >> (fixed | sum((j >> n & 1) << k for n, k in enumerate(free))) & 1
             for j in range(1 << len(free))]
    if len(set(table)) == 1:
        return Const(table[0], 1)
    if table == [0, 1]:
        return ins[free[0]]
    return Const(sum(bit << j for j, bit in enumerate(table)), len(table)).bit_select(
        Cat(*(ins[k] for k in free)), 1)


def ccu2c_model(m, init0, init1, cin, ins0, ins1, s0, s1, cout):
    """A CCU2C (INJECT1_0 = INJECT1_1 = "NO") in logic: drives `s0`, `s1` and `cout`
    from `cin` and the halves' (A, B, C, D) inputs `ins0`, `ins1`. Each half's LUT is
    one signal, read by both its sum and its carry."""
    middle = Signal(name=f"{cout.name}_c1")
    for init, ins, c_in, s, c_out in ((init0, ins0, cin, s0, middle),
                                      (init1, ins1, middle, s1, cout)):
        f = Signal(name=f"{s.name}_f")
        m.d.comb += [f.eq(lut(init, ins)), s.eq(f ^ c_in),
                     c_out.eq(Mux(f, c_in, lut(init & 0xF, ins[:2])))]


class Chain:
    """Halves of one carry chain, in order from the chain's start (CIN = 0).

    `add(init, a, b, c, d)` appends a half and returns its index; after `emit`,
    `sums[index]` is that half's S output.
    """

    def __init__(self, name):
        self.name = name
        self.halves = []
        self.sums = None

    def __len__(self):
        return len(self.halves)

    def add(self, init, a, b, c, d):
        if not 0 <= init < 1 << 16:
            raise ValueError(f"LUT4 INIT must be 16 bits, not {init:#x}")
        self.halves.append((init, tuple(Value.cast(v) for v in (a, b, c, d))))
        return len(self.halves) - 1

    def emit(self, m, platform):
        """Add the chain to `m`: ceil(halves / 2) CCU2C cells (the last one padded with
        a half that computes nothing).

        The chain's first half must restart the carry (its LUT 0 for its inputs, C
        tied 1), so the carry entering the chain is never read: the first cell's CIN
        and the last cell's COUT stay unconnected, and nextpnr adds no feed-in or
        feed-out cells for them. (Yosys ties the open CIN to 0, which nextpnr
        takes for a signal to feed in: the build runs
        `bitfab.rtl.families.ecp5.free_chain_ends` on yosys's netlist, which opens the
        ports of the cells marked with the ``bitfab_chain`` attribute.)
        """
        init, (_, _, c, _) = self.halves[0]
        if not (isinstance(c, Const) and c.value == 1 and
                all(init >> k & 1 == 0 for k in range(16) if k >> 2 & 1)):
            raise ValueError(f"chain {self.name} must start with a half whose LUT is 0 "
                             f"for C = 1, with C tied 1")
        halves = self.halves + [(0, (Const(0, 1),) * 4)] * (len(self.halves) % 2)
        self.sums = []
        carry = None
        for k in range(0, len(halves), 2):
            name = f"{self.name}_{k // 2}"
            (init0, ins0), (init1, ins1) = halves[k], halves[k + 1]
            s0, s1 = Signal(name=f"{name}_s0"), Signal(name=f"{name}_s1")
            cout = Signal(name=f"{name}_cout") if k + 2 < len(halves) else None
            if has_carry_chains(platform):
                pins = {f"i_{pin}{half}": value for half, ins in ((0, ins0), (1, ins1))
                        for pin, value in zip("ABCD", ins)}
                ends = []
                if carry is None:
                    ends.append("head")
                else:
                    pins["i_CIN"] = carry
                if cout is None:
                    ends.append("tail")
                else:
                    pins["o_COUT"] = cout
                if ends:
                    # Yosys ties an open CIN to 0; `free_chain_ends` opens it again.
                    pins["a_bitfab_chain"] = " ".join(ends)
                m.submodules[name] = Instance(
                    "CCU2C", p_INIT0=Const(init0, 16), p_INIT1=Const(init1, 16),
                    p_INJECT1_0="NO", p_INJECT1_1="NO", o_S0=s0, o_S1=s1, **pins)
            else:
                # The chain's first carry in is never read (see above): 0 stands in.
                ccu2c_model(m, init0, init1, Const(0, 1) if carry is None else carry,
                            ins0, ins1, s0, s1, Signal() if cout is None else cout)
            self.sums += [s0, s1]
            carry = cout
        return self.sums
