"""The UART shell: load words and input beats over a serial line, scores back, in
Amaranth's simulator against the golden model (a one-layer network, divisor 4)."""

import torch
from amaranth.sim import Simulator

from bitfab.hls_gen.ir import Graph
from bitfab.hls_gen.plan import fold, load_rows, map_to_hw
from bitfab.rtl.shell import INPUT, LOAD, RESTART, SerialShell
from bitfab.sw_driver.beats import input_beats, output_beats
from test_mvau import random_layer

DIVISOR = 4


def test_shell_round_trip():
    gen = torch.Generator().manual_seed(7)
    layer = random_layer(gen, "pa", 4, 8, m=2, n=3, coef_bits=6)
    graph = Graph(3, 1.0, [layer])
    [config] = fold(map_to_hw(graph), [{"pe": 2, "simd": 4}])
    codes = torch.randint(0, 4, (3, 8), generator=gen)
    logits, _ = graph.run(codes)
    words = config.pack(load_rows(layer, config))
    beats = input_beats(config, codes, "onehot")
    want = output_beats(config, logits)
    shell = SerialShell([config], DIVISOR)
    in_bytes, out_bytes = shell.in_bytes, shell.out_bytes
    message = [RESTART, ord("x")]        # an unknown command byte is ignored
    for word in words:
        message += [LOAD, *word.to_bytes(4, "little")]
    for beat in beats:
        message += [INPUT, *beat.to_bytes(in_bytes, "little")]
    received = []

    async def host(ctx):
        for byte in message:
            for level in [0, *((byte >> k) & 1 for k in range(8)), 1]:
                ctx.set(shell.rx, level)
                await ctx.tick().repeat(DIVISOR)
        # Time for every output byte (10 bits each) and the pipeline, then stop.
        await ctx.tick().repeat(len(want) * out_bytes * 10 * DIVISOR + 200)

    async def listen(ctx):
        while len(received) < len(want) * out_bytes:
            await ctx.tick().until(shell.tx == 0)            # start bit
            await ctx.tick().repeat(DIVISOR + DIVISOR // 2)  # middle of bit 0
            byte = 0
            for k in range(8):
                byte |= ctx.get(shell.tx) << k
                await ctx.tick().repeat(DIVISOR)
            assert ctx.get(shell.tx) == 1, "stop bit"
            received.append(byte)

    sim = Simulator(shell)
    sim.add_clock(1e-8)
    sim.add_testbench(host)
    sim.add_testbench(listen, background=True)
    sim.run()
    got = [int.from_bytes(bytes(received[k:k + out_bytes]), "little")
           for k in range(0, len(received), out_bytes)]
    assert got == want
