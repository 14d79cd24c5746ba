"""The shell: framed load words and input beats in, framed output beats and status out,
in Amaranth's simulator against the golden model (a one-layer network): over the
UART (divisor 4), and over its byte streams with random gaps and backpressure,
where every status must be what `ShellModel` (the shell's receive side in
Python) predicts from the bytes sent."""

import random

import pytest
import torch
from amaranth.sim import Simulator

from bitfab.hls_gen.compiler.folding import fold
from bitfab.hls_gen.compiler.plan import map_to_hw
from bitfab.hls_gen.compiler.stores import load_rows, load_stream
from bitfab.hls_gen.golden.ir import Graph
from bitfab.rtl.shell import FrameShell, SerialShell
from bitfab.sw_driver.beats import input_beats, output_beats
from bitfab.sw_driver.protocol import (ShellModel, WireError, WireFormat, check_frame, crc,
                                       frame, input_crc, input_frames, load_crc,
                                       load_frames, parse_reply, restart_frame, unframe)
from networks import random_layer

DIVISOR = 4
EXTRA = [0x12345678, 0x9ABCDEF0, 0x0BADCAFE]   # load words beyond the plan


def one_layer(seed=7):
    """A one-layer network's config, load words, three images' input beats and the
    golden model's output beats for them."""
    gen = torch.Generator().manual_seed(seed)
    layer = random_layer(gen, "pa", 4, 8, m=2, n=3, coef_bits=6)
    graph = Graph(3, 1.0, [layer])
    [config] = fold(map_to_hw(graph), [{"pe": 2, "simd": 4}])
    codes = torch.randint(0, 4, (3, 8), generator=gen)
    logits, _ = graph.run(codes)
    words = config.pack(load_rows(layer, config))
    return config, words, input_beats(config, codes, "onehot"), output_beats(config, logits)


def replies(data, wire):
    """The board's bytes -> its replies (`Reply`), every frame whole."""
    frames = bytes(data).split(b"\0")
    assert frames[-1] == b"", "the board's last frame is not closed"
    out = [parse_reply(unframe(encoded), wire) for encoded in frames[:-1]]
    assert None not in out, out
    return out


def serial_line(shell, message, idle_bytes, bad_stop=()):
    """Drive `message` (bytes; those at the indices in `bad_stop` with a stop bit of 0)
    into the shell's UART, then idle `idle_bytes` byte times; return what it sent."""
    received = []

    async def host(ctx):
        for index, byte in enumerate(message):
            stop = 0 if index in bad_stop else 1
            for level in [0, *((byte >> k) & 1 for k in range(8)), stop]:
                ctx.set(shell.rx, level)
                await ctx.tick().repeat(DIVISOR)
            ctx.set(shell.rx, 1)
        await ctx.tick().repeat(idle_bytes * 10 * DIVISOR + 200)

    async def listen(ctx):
        while True:
            while ctx.get(shell.tx):                         # start bit
                await ctx.tick()
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
    return bytes(received)


def test_shell_round_trip_over_the_uart():
    """Load, status, inputs, outputs, status: the outputs are the golden model's, in
    sequence, the first status shows the load, the second the run's inputs and
    outputs, each CRC equal to Python's own CRC-16/CCITT-FALSE of the bytes."""
    config, words, beats, want = one_layer()
    shell = SerialShell([config], DIVISOR)
    wire = WireFormat.of_layers([config])
    message = restart_frame() + load_frames(words, wire) + check_frame(7)
    message += input_frames(beats, wire) + b"\0" * 60 + check_frame(8)
    got = replies(serial_line(shell, message, idle_bytes=40), wire)
    loaded, outputs, ran = got[0], got[1:-1], got[-1]
    assert (loaded.kind, loaded.number, ran.kind, ran.number) == ("status", 7, "status", 8)
    status = loaded.value
    assert (status.words, status.loaded, status.dropped, status.skipped) == (len(words), 1, 0, 0)
    status.check_load(len(words), load_crc(words, wire))
    assert [r.number for r in outputs] == list(range(len(want)))
    assert [r.value for r in outputs] == want
    out_bytes = b"".join(r.value.to_bytes(wire.out_bytes, "little") for r in outputs)
    assert (ran.value.in_crc, ran.value.out_crc) == (input_crc(beats, wire), crc(out_bytes))
    assert (ran.value.inputs, ran.value.outputs, ran.value.crc) == (
        len(beats), len(want), status.crc)


def test_a_fault_costs_one_frame_over_the_uart():
    """A bit changed in load word 2's frame: that frame is dropped, the words after it
    are skipped (out of order), and sending from word 2 again completes the load.
    A byte with a bad stop bit costs its frame too. Words beyond the plan and input
    beats before the weights are refused, not waited on."""
    config, words, beats, want = one_layer()
    shell = SerialShell([config], DIVISOR)
    wire = WireFormat.of_layers([config])
    n = len(words)
    frames = [load_frames([w], wire, start=k) for k, w in enumerate(words)]
    changed = bytearray(frames[2])
    changed[5] ^= 0x10
    message = restart_frame() + input_frames(beats[:2], wire) + frames[0] + frames[1]
    message += bytes(changed) + b"".join(frames[3:]) + check_frame(1)
    message += b"".join(frames[2:]) + check_frame(2)
    framing_at = len(message) + 3
    message += restart_frame() + b"".join(frames) + load_frames(EXTRA, wire, start=n)
    message += check_frame(3)
    got = replies(serial_line(shell, message, idle_bytes=40, bad_stop={framing_at}), wire)
    assert [r.number for r in got] == [1, 2, 3]
    first, second, third = (r.value for r in got)
    assert (first.words, first.dropped, first.skipped, first.refused) == (2, 1, n - 3, 2)
    assert (second.words, second.loaded, second.dropped, second.skipped) == (n, 1, 0, 0)
    second.check_load(n, load_crc(words, wire))
    # The bad stop bit: the receiver drops the byte and resynchronises within the
    # restart's frame, which is dropped; the load words are skipped, the status says
    # so, and the extra words are skipped or refused.
    assert third.framing_errors >= 1 and third.dropped >= 1 and third.words == n
    with pytest.raises(WireError, match=rf"loaded after {n} of the {n + 3} load words: it runs a "
                                        r"bitstream of another plan"):
        second.check_load(n + 3, load_crc(words + EXTRA, wire))


def test_frames_are_checked_before_they_are_sent():
    wire = WireFormat.of_widths(load_bits=32, in_bits=12, out_bits=20)
    encoded = frame(b"L\x00\x05")           # COBS: no byte 0 but the last
    assert encoded[-1] == 0 and 0 not in encoded[:-1] and len(encoded) == 3 + 2 + 2
    assert unframe(frame(b"I\x01\x02")[:-1]) == b"I\x01\x02"
    assert unframe(frame(b"I\x01\x02")[:-2]) is None          # cut
    with pytest.raises(WireError, match=r"input beat 1 is 4096, not a 12-bit unsigned"):
        input_frames([0, 1 << 12], wire)
    with pytest.raises(WireError, match=r"load word 3 is -1, not a 32-bit unsigned"):
        load_frames([-1], wire, start=3)


def byte_line(shell, message, seed, gaps=0.3, stalls=0.3, idle=400):
    """Bytes into a `FrameShell`'s rx stream with random gaps (`gaps`: the chance of an
    idle cycle before a byte), its tx stream taken with random backpressure; return
    what it sent."""
    received = []
    rng = random.Random(seed)

    async def host(ctx):
        for byte in message:
            while rng.random() < gaps:
                await ctx.tick()
            ctx.set(shell.rx.payload, byte)
            ctx.set(shell.rx.valid, 1)
            while not (await ctx.tick().sample(shell.rx.ready))[2]:    # taken at this edge?
                pass
            ctx.set(shell.rx.valid, 0)
        await ctx.tick().repeat(idle)

    async def listen(ctx):
        while True:
            ctx.set(shell.tx.ready, rng.random() >= stalls)
            _, _, valid, ready, payload = await ctx.tick().sample(
                shell.tx.valid, shell.tx.ready, shell.tx.payload)
            if valid and ready:
                received.append(payload)

    sim = Simulator(shell)
    sim.add_clock(1e-8)
    sim.add_testbench(host)
    sim.add_testbench(listen, background=True)
    sim.run()
    return bytes(received)


@pytest.mark.parametrize("seed", [1, 2])
def test_every_status_is_what_the_model_predicts(seed):
    """Random faults between statuses (garbage, cut, flipped and oversized frames,
    words out of order and beyond the plan, beats before the weights), over the byte
    streams with random gaps and backpressure: each status is the one `ShellModel`
    predicts from the bytes sent, and a clean load then runs the golden model's
    outputs."""
    config, words, beats, want = one_layer()
    shell = FrameShell([config])
    wire = WireFormat.of_layers([config])
    model = ShellModel(wire, len(words))
    rng = random.Random(seed)
    good = [restart_frame(), *(load_frames([w], wire, start=k) for k, w in enumerate(words)),
            *(input_frames([b], wire, start=k) for k, b in enumerate(beats))]
    message = bytearray()
    for k in range(40):
        pick = bytearray(rng.choice(good))
        fault = rng.randrange(4)
        if fault == 0:
            pick = bytearray(rng.randrange(256) for _ in range(rng.randrange(1, 12)))
        elif fault == 1:
            pick = pick[:rng.randrange(1, len(pick))] + b"\0"
        elif fault == 2:
            pick[rng.randrange(len(pick))] ^= 1 << rng.randrange(8)
        message += pick
        if rng.random() < 0.3:
            message += check_frame(k)     # taken unless a fault before runs into it
    message += restart_frame() + load_frames(words, wire) + input_frames(beats, wire)
    message += b"\0" * 100 + check_frame(255)
    model.feed(message)
    got = replies(byte_line(shell, bytes(message), seed, idle=2000), wire)
    statuses = [r for r in got if r.kind == "status"]
    assert [r.number for r in statuses] == model.checks
    assert len(statuses) > 5 and statuses[-1].number == 255
    for k, reply in enumerate(statuses):
        predicted = model.statuses[k]
        status = {name: getattr(reply.value, name) for name in predicted}
        assert status == predicted, f"status {k} (tag {reply.number}), seed {seed}"
    assert [r.value for r in got if r.kind == "output"][-len(want):] == want


def test_a_cut_word_and_a_burst_of_status_requests():
    """Two of issue 32's findings, on the byte streams: a load word cut short left the
    shell inside its frame, and the status request after it was swallowed as the
    word's bytes; a burst of status requests came back merged. Now the request
    (behind the byte 0 the host puts before each) is answered, and each of a burst
    gets a reply of its own, tagged, in order."""
    config, words, _, _ = one_layer()
    shell = FrameShell([config])
    wire = WireFormat.of_layers([config])
    cut = load_frames(words[:1], wire)[:6]
    message = restart_frame() + cut + b"\0" + check_frame(1) + check_frame(2) + check_frame(3)
    got = replies(byte_line(shell, message, seed=3, idle=600), wire)
    assert [(r.kind, r.number) for r in got] == [("status", 1), ("status", 2), ("status", 3)]
    assert [r.value.dropped for r in got] == [1, 0, 0]
    assert got[0].value.words == 0


def test_a_status_right_behind_the_last_load_word_says_loaded():
    """A status request straight behind the last load word, a byte a cycle: the shell
    answers it once the network's load latency has passed, so it says loaded (it
    answered before the network's `loaded` rose, and the host refused the board)."""
    gen = torch.Generator().manual_seed(5)
    layers = [random_layer(gen, "pa", 8, 16, m=2, n=3, n_out=3, coef_bits=6)]
    layers[0].input_encoding, layers[0].input_planes = "bitplanes", 3
    layers += [random_layer(gen, "pa", 8, 8, m=2, n=3, n_out=3, coef_bits=6) for _ in range(3)]
    layers.append(random_layer(gen, "pa", 4, 8, m=2, n=3, coef_bits=6))
    for k, layer in enumerate(layers):
        layer.name = f"layer{k}"
    graph = Graph(3, 1.0, layers)       # five layers: a load latency of 10 cycles
    configs = fold(map_to_hw(graph), [{"pe": 2, "simd": 4}] * len(layers))
    words = load_stream(graph, configs)
    shell = FrameShell(configs)
    wire = WireFormat.of_layers(configs)
    message = restart_frame() + load_frames(words, wire) + check_frame(7)
    [status] = replies(byte_line(shell, message, seed=4, gaps=0, stalls=0, idle=200), wire)
    assert (status.number, status.value.words) == (7, len(words))
    assert status.value.loaded == 1
