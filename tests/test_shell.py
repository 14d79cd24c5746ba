"""The UART shell: load words and input beats over a serial line, scores back, in
Amaranth's simulator against the golden model (a one-layer network, divisor 4); and
its status, which lets the host prove that weights, inputs and outputs crossed the
line as sent."""

import binascii

import pytest
import torch
from amaranth.sim import Simulator

from bitfab.hls_gen.golden.ir import Graph
from bitfab.hls_gen.compiler.plan import fold, load_rows, map_to_hw
from bitfab.rtl.shell import CHECK, INPUT, LOAD, RESTART, STATUS_BYTES, SerialShell
from bitfab.sw_driver.beats import input_beats, output_beats
from bitfab.sw_driver.protocol import WireError, WireFormat, crc, decode_status, load_crc
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


def frames(command, values, size):
    return [b for value in values for b in (command, *value.to_bytes(size, "little"))]


def serial_line(shell, message, reply_bytes=None, bad_stop=(), tail_bytes=0):
    """Drive `message` into the shell's receiver: bytes (those at the indices in
    `bad_stop` with a stop bit of 0) and ``None``s (the line idle for a byte's time).
    Return the first `reply_bytes` bytes the shell sends, or with `reply_bytes` None
    all it sends until `tail_bytes` byte times after the message."""
    received = []

    async def host(ctx):
        for index, byte in enumerate(message):
            stop = 0 if index in bad_stop else 1
            bits = [1] * 10 if byte is None else [0, *((byte >> k) & 1 for k in range(8)), stop]
            for level in bits:
                ctx.set(shell.rx, level)
                await ctx.tick().repeat(DIVISOR)
            ctx.set(shell.rx, 1)
        # Time for every reply byte (10 bits each) and the pipeline, then stop.
        await ctx.tick().repeat((reply_bytes or tail_bytes) * 10 * DIVISOR + 200)

    async def listen(ctx):
        while reply_bytes is None or len(received) < reply_bytes:
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
    if reply_bytes is not None:
        assert len(received) == reply_bytes, f"{len(received)} of {reply_bytes} reply bytes"
    return bytes(received)


def test_shell_round_trip():
    """Load, status, inputs, outputs, status: the outputs are the golden model's, the
    first status shows the load, the second the run's inputs and outputs, each CRC
    equal to Python's own CRC-16/CCITT-FALSE of the bytes sent."""
    config, words, beats, want = one_layer()
    shell = SerialShell([config], DIVISOR)
    wire = WireFormat.of_layers([config])
    out_bytes = shell.out_bytes
    message = [RESTART, ord("x")]        # an unknown command byte is ignored
    message += frames(LOAD, words, 4) + [CHECK] + frames(INPUT, beats, shell.in_bytes)
    message += [None] * (len(want) * out_bytes) + [CHECK]
    reply = serial_line(shell, message, 2 * STATUS_BYTES + len(want) * out_bytes)
    loaded, ran = decode_status(reply[:STATUS_BYTES]), decode_status(reply[-STATUS_BYTES:])
    assert (loaded.words, loaded.loaded, loaded.framing_errors, loaded.overruns) == (
        len(words), 1, 0, 0)
    sent = b"".join(w.to_bytes(4, "little") for w in words)
    assert loaded.crc == binascii.crc_hqx(sent, 0xFFFF) == load_crc(words, wire)
    loaded.check_load(len(words), load_crc(words, wire))
    outputs = reply[STATUS_BYTES:-STATUS_BYTES]
    got = [int.from_bytes(outputs[k:k + out_bytes], "little")
           for k in range(0, len(outputs), out_bytes)]
    assert got == want
    inputs = b"".join(beat.to_bytes(shell.in_bytes, "little") for beat in beats)
    assert (ran.in_crc, ran.out_crc) == (binascii.crc_hqx(inputs, 0xFFFF),
                                         binascii.crc_hqx(outputs, 0xFFFF))
    assert (ran.crc, ran.words, ran.loaded) == (loaded.crc, loaded.words, 1)
    ran.check_run(crc(inputs), crc(outputs))
    with pytest.raises(WireError, match=r"run check: the board's CRC of the outputs it sent "
                                        r"is 0x[0-9a-f]{4}, the host read 0x[0-9a-f]{4}: "
                                        r"bytes changed on the way back"):
        ran.check_run(crc(inputs), crc(outputs[:-1] + bytes([outputs[-1] ^ 1])))
    with pytest.raises(WireError, match=r"run check: the board's CRC of the input beats"):
        ran.check_run(crc(inputs[1:]), crc(outputs))


def test_the_load_status_shows_what_went_wrong_on_the_line():
    """Four loads into one running shell, each checked ('C') after it: a data byte
    changed, a byte with a bad stop bit, more words than the plan (a board of another
    plan: the shell drops them rather than hang), and fewer. Input beats sent before
    the weights are dropped too, and the last load still classifies correctly."""
    config, words, beats, want = one_layer()
    shell = SerialShell([config], DIVISOR)
    wire = WireFormat.of_layers([config])
    n = len(words)
    good = frames(LOAD, words, 4)
    changed = list(good)
    changed[5 * 2 + 3] ^= 0x10                       # a bit of word 2's third byte
    extra = frames(LOAD, EXTRA, 4)
    message = frames(INPUT, beats[:2], shell.in_bytes)  # before any weights: dropped
    message += [RESTART, *changed, CHECK]
    framing_at = len(message) + 1 + 5 * 3            # word 3's command byte
    message += [RESTART, *good, CHECK]
    message += [RESTART, *good, *extra, CHECK]
    message += [RESTART, *good[:5 * (n - 1)], CHECK]
    message += [RESTART, *good, CHECK, *frames(INPUT, beats, shell.in_bytes)]
    reply = serial_line(shell, message, 5 * STATUS_BYTES + len(want) * shell.out_bytes,
                        bad_stop={framing_at})
    changed_s, framing_s, extra_s, short_s, clean_s = (
        decode_status(reply[k * STATUS_BYTES:(k + 1) * STATUS_BYTES]) for k in range(5))
    load = load_crc(words, wire)

    assert (changed_s.words, changed_s.loaded) == (n, 1) and changed_s.crc != load
    with pytest.raises(WireError, match=rf"CRC of the load words is {changed_s.crc:#06x}, "
                                        rf"the host sent {load:#06x}: bytes changed"):
        changed_s.check_load(n, load)

    # Word 3's 'L' is lost and the receiver finds its frames again only some bytes
    # later (the next start bit runs on from the bad stop bit): words short.
    assert framing_s.framing_errors >= 1
    assert framing_s.words < n and not framing_s.loaded
    with pytest.raises(WireError, match=rf"lost {framing_s.framing_errors} bytes with a bad "
                                        rf"stop bit"):
        framing_s.check_load(n, load)

    assert (extra_s.words, extra_s.loaded, extra_s.framing_errors) == (n, 1, 0)
    assert extra_s.crc == load_crc(words + EXTRA, wire)
    with pytest.raises(WireError, match=rf"loaded after {n} of the {n + 3} load words: it "
                                        rf"runs a bitstream of another plan"):
        extra_s.check_load(n + 3, extra_s.crc)

    assert (short_s.words, short_s.loaded) == (n - 1, 0)
    with pytest.raises(WireError, match=rf"not loaded after all {n - 1} load words"):
        short_s.check_load(n - 1, load_crc(words[:n - 1], wire))

    clean_s.check_load(n, load)
    got = [int.from_bytes(reply[k:k + shell.out_bytes], "little")
           for k in range(5 * STATUS_BYTES, len(reply), shell.out_bytes)]
    assert got == want


def test_the_load_status_counts_bytes_sent_faster_than_the_network_takes_them():
    """Input beats back to back with no room on the line: the network stalls behind the
    transmitter, the receiver overruns, and the status says so."""
    config, words, beats, want = one_layer()
    shell = SerialShell([config], DIVISOR)
    items = 60
    message = [RESTART, *frames(LOAD, words, 4)]
    message += frames(INPUT, [0] * (len(beats) // 3 * items), shell.in_bytes)
    # Idle until every output that got through is out, then ask.
    message += [None] * (items * len(want) // 3 * shell.out_bytes) + [CHECK]
    reply = serial_line(shell, message, tail_bytes=STATUS_BYTES + 2)
    outputs = len(reply) - STATUS_BYTES
    assert 0 < outputs < items * len(want) // 3 * shell.out_bytes
    status = decode_status(reply[-STATUS_BYTES:])
    assert (status.words, status.loaded, status.framing_errors) == (len(words), 1, 0)
    assert status.overruns > 0
    with pytest.raises(WireError, match=rf"lost {status.overruns} bytes overrun"):
        status.check_load(len(words), load_crc(words, WireFormat.of_layers([config])))
