"""The host driver and its wire protocol: frames checked before they are sent, replies by
their length, and a whole session against the simulated board (the shell's Verilog
in Verilator behind a TCP port), weights changed on the running board."""

import json
import os
import time
from pathlib import Path

import pytest
import torch

from bitfab.hls_gen.compiler.deploy import deploy_weights, run_on_board, simulated_board
from bitfab.hls_gen.errors import BitfabError
from bitfab.hls_gen.compiler.flow import BuildConfig, artifact, run_flow
from bitfab.hls_gen.compiler.plan import fold, load_stream, map_to_hw, plan_from_dict
from bitfab.rtl.network import Network, NetworkInstance
from bitfab.sim.board import SimulatedBoard, shell_verilog
from bitfab.sw_driver.host import Host, open_link
from bitfab.sw_driver.protocol import (WireError, WireFormat, crc, decode_outputs,
                                       decode_status, encode_inputs, encode_load, load_crc)
from networks import cnn_graph, digits_graph, small_graph

WIRE = WireFormat.of_widths(load_bits=32, in_bits=12, out_bits=20)


def test_frames_are_checked_before_they_are_sent():
    assert (WIRE.load_bytes, WIRE.in_bytes, WIRE.out_bytes) == (4, 2, 3)
    assert WIRE.item_bytes(in_beats=8, out_beats=10) == 8 * 3 + 10 * 3
    assert encode_load([0x04030201], WIRE) == b"RL\x01\x02\x03\x04"
    assert encode_inputs([0xABC, 1], WIRE) == b"I\xbc\x0aI\x01\x00"
    with pytest.raises(WireError, match=r"input beat 1 is 4096, not a 12-bit unsigned"):
        encode_inputs([0, 1 << 12], WIRE)
    with pytest.raises(WireError, match=r"load word 0 is -1, not a 32-bit unsigned"):
        encode_load([-1], WIRE)


def test_replies_are_checked_by_their_length_and_width():
    assert decode_outputs(b"\x01\x00\x00\xff\xff\x0f", WIRE) == [1, 0xFFFFF]
    with pytest.raises(WireError, match="5 bytes from the board are not whole output beats "
                                        "of 3 bytes"):
        decode_outputs(b"\x01" * 5, WIRE)
    with pytest.raises(WireError, match=r"output beat 0 is 0x100000, wider than the plan's "
                                        r"20 bits: the line is out of step"):
        decode_outputs(b"\x00\x00\x10", WIRE)


class FakeBoard:
    """A link whose board answers each complete item (`beats` input frames) with one
    output beat, its input beats' sum (none if `silent`), and ``'C'`` with a status
    of its inputs' and outputs' CRCs (nothing at all if `mute`); after the last
    reply it sends `extra`. It records the most items ever in flight."""

    def __init__(self, beats, silent=False, mute=False, extra=b""):
        self.beats, self.silent, self.mute, self.extra = beats, silent, mute, extra
        self.frames, self.reply, self.most_in_flight, self.in_flight = [], bytearray(), 0, 0
        self.inputs, self.outputs, self.unread_outputs = bytearray(), bytearray(), 0

    def write(self, data):
        k = 0
        while k < len(data):
            if data[k:k + 1] == b"I":
                beat = data[k + 1:k + 1 + WIRE.in_bytes]
                self.frames.append(int.from_bytes(beat, "little"))
                self.inputs += beat
                k += 1 + WIRE.in_bytes
                if len(self.frames) % self.beats == 0:
                    self._answer()
            else:
                if data[k:k + 1] == b"C" and not self.mute:
                    self.reply += self._status()
                k += 1

    def _answer(self):
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        if not (self.silent or self.mute):
            out = sum(self.frames[-self.beats:]).to_bytes(WIRE.out_bytes, "little")
            self.reply += out
            self.outputs += out
            self.unread_outputs += len(out)

    def _status(self):
        fields = [(0xFFFF, 2), (0, 3), (1, 1), (0, 1), (0, 1), (crc(self.inputs), 2),
                  (crc(self.outputs), 2)]
        self.inputs, self.outputs = bytearray(), bytearray()
        return b"".join(value.to_bytes(size, "little") for value, size in fields)

    def flush(self):
        pass

    def read(self, n):
        data, self.reply = bytes(self.reply[:n]), self.reply[n:]
        outputs = min(len(data), self.unread_outputs)
        self.unread_outputs -= outputs
        self.in_flight -= outputs // WIRE.out_bytes
        if not self.reply:
            self.reply, self.extra = bytearray(self.extra), b""
        return data

    @property
    def in_waiting(self):
        return len(self.reply)


def test_host_keeps_a_window_of_items_in_flight():
    items = [[k, 2 * k, 3 * k] for k in range(10)]
    board = FakeBoard(beats=3)
    got = Host(board, WIRE, timeout=0.2, window=2).run(items, out_beats=1)
    assert got == [[6 * k] for k in range(10)]
    assert board.most_in_flight == 2


def test_host_names_the_item_whose_reply_does_not_come():
    with pytest.raises(WireError, match=r"item 0's output: 0 of 3 bytes came within 0.2 s"):
        Host(FakeBoard(beats=1, silent=True), WIRE, timeout=0.2).run([[1], [2]], out_beats=1)
    with pytest.raises(WireError, match="the board sent 3 bytes after the last item's outputs"):
        Host(FakeBoard(beats=1, extra=b"\x00" * 3), WIRE, timeout=0.2).run([[1]], out_beats=1)


def test_a_run_is_checked_by_the_board_status():
    """The host compares the CRCs of what it sent and read with the board's: a byte
    changed either way is caught even where the scores would look plausible."""
    items = [[k, 2 * k] for k in range(4)]
    assert Host(FakeBoard(beats=2), WIRE, timeout=0.2).run(items, out_beats=1) == [
        [3 * k] for k in range(4)]
    board = FakeBoard(beats=2)
    with pytest.raises(WireError, match=r"run check: the board's CRC of the outputs it sent "
                                        r"is 0x[0-9a-f]{4}, the host read 0x[0-9a-f]{4}"):
        # (The first 12 bytes read are the status that opens the run.)
        Host(ChangedRead(board, at=12 + 4), WIRE, timeout=0.2).run(items, out_beats=1)
    with pytest.raises(WireError, match=r"run check: the board's CRC of the input beats is "
                                        r"0x[0-9a-f]{4}, the host sent 0x[0-9a-f]{4}: bytes "
                                        r"changed on the way to the board"):
        # (Byte 0 is the 'C' that opens the run, byte 1 the first 'I'.)
        Host(ChangedByte(FakeBoard(beats=2), at=2), WIRE, timeout=0.2).run(items, out_beats=1)


def test_the_board_status_is_read_by_its_length():
    with pytest.raises(WireError, match=r"the board's status: 0 of 12 bytes came within 0.2 s"):
        Host(FakeBoard(beats=1, mute=True), WIRE, timeout=0.2).load([1, 2])
    with pytest.raises(WireError, match=r"the board's status's loaded byte is 7, not 0 or 1"):
        decode_status(bytes([0, 0, 2, 0, 0, 7, 0, 0, 0, 0, 0, 0]))


class ChangedRead:
    """A link that flips bit 0 of the byte read at offset `at` (counting from its
    first read)."""

    def __init__(self, link, at):
        self.link, self.at, self.read_so_far = link, at, 0

    def read(self, n):
        data = bytearray(self.link.read(n))
        if 0 <= self.at - self.read_so_far < len(data):
            data[self.at - self.read_so_far] ^= 1
        self.read_so_far += len(data)
        return bytes(data)

    def __getattr__(self, name):
        return getattr(self.link, name)


def test_a_port_that_does_not_open_is_named():
    with pytest.raises(WireError, match="cannot open /dev/bitfab-no-such-port"):
        open_link("/dev/bitfab-no-such-port")


@pytest.mark.sim
def test_weights_change_on_the_simulated_board(tmp_path):
    """One design, two sets of weights: each loaded over the serial line into the same
    running (simulated) board, every score equal to its golden model's."""
    graphs = [small_graph(seed) for seed in (3, 4)]
    configs = fold(map_to_hw(graphs[0]))
    assert fold(map_to_hw(graphs[1])) == configs
    design = shell_verilog(NetworkInstance(configs),
                           network_v=_verilog(Network(configs), "network"))
    pixels = torch.randint(0, 8, (12, 16), generator=torch.Generator().manual_seed(5))
    wants = [graph.run(pixels)[0].tolist() for graph in graphs]
    assert wants[0] != wants[1]
    words = load_stream(graphs[0], configs)
    wire = WireFormat.of_layers(configs)
    with SimulatedBoard(design, tmp_path) as board:
        link = open_link(board.url, timeout=30)
        # A bit changed on the line (byte 9: word 1's third) is caught by the board's
        # CRC; the next load, whole, goes through.
        with pytest.raises(WireError, match=rf"the board's CRC of the load words is 0x[0-9a-f]"
                                            rf"{{4}}, the host sent {load_crc(words, wire):#06x}"):
            Host(ChangedByte(link, at=9), wire, timeout=60).load(words, configs)
        with Host(link, wire, timeout=60) as host:
            for graph, want in zip(graphs, wants):
                status = host.load(load_stream(graph, configs), configs)
                assert (status.words, status.loaded) == (len(words), 1)
                assert host.scores(configs, pixels, graph.layers[0].input_encoding) == want


class ChangedByte:
    """A link that flips bit 4 of the byte written at offset `at` (counting from its
    first write), as a noisy line would."""

    def __init__(self, link, at):
        self.link, self.at, self.written = link, at, 0

    def write(self, data):
        data = bytearray(data)
        if 0 <= self.at - self.written < len(data):
            data[self.at - self.written] ^= 0x10
        self.written += len(data)
        self.link.write(bytes(data))

    def __getattr__(self, name):
        return getattr(self.link, name)



@pytest.mark.sim
def test_bitfab_run_loads_another_model_into_the_same_build(tmp_path):
    """`bitfab run` on a build (its network.v under the shell, in Verilator): the build's
    weights, then another model of the same plan, each score equal to the golden
    model's; a model of another shape is refused before anything is sent. Then
    `bitfab board`'s kind of board: `deploy` in one session, `run --no-load` in the
    next, the weights still there (and a run against another model fails)."""
    out = tmp_path / "build"
    run_flow(BuildConfig(out=str(out), stop_step="emit_rtl"), digits_graph(1),
             log=lambda _: None)
    for model in (None, digits_graph(2)):
        result = run_on_board(out, "sim", model, images=6, log=print)
        assert (result["images"], result["mismatches"]) == (6, 0), result
        # Per image, 8 input beats of 8 pixels in 5 planes (40 bits: a command byte and
        # 5) and 2 output beats of 5 scores of 5 bits (25 bits: 4 bytes): 56 bytes,
        # 205.7 images/s at 11,520 bytes/s.
        assert (result["wire_bytes_per_image"], result["link_images_per_s"]) == (56, 205.7)
        assert result["accuracy"] == result["golden_accuracy"]
    with pytest.raises(BitfabError, match=r"layer \w+: rows is 16 in the model, 8 in the "
                                          r"build's plan; the bitstream cannot take it"):
        run_on_board(out, "sim", digits_graph(3, hidden=16), images=6)
    with pytest.raises(BitfabError, match="start one with `bitfab board BUILD`"):
        deploy_weights(out, "sim")
    with simulated_board(out, sessions=4) as board:
        with pytest.raises(BitfabError, match=r"the board at socket://\S+ holds no weights: "
                                              r"`bitfab deploy` them first"):
            run_on_board(out, board.url, images=6, timeout=30, load=False)
        assert deploy_weights(out, board.url, digits_graph(2)) == result["load_words"]
        again = run_on_board(out, board.url, digits_graph(2), images=6, timeout=30,
                             load=False)
        # The board holds model 2's weights; the build's own model disagrees.
        with pytest.raises(BitfabError, match=r"the board's scores differ from the golden "
                                              r"model's on \d of 6 images \(first: test "
                                              r"image \d, board \["):
            run_on_board(out, board.url, images=6, timeout=30, load=False)
    assert (again["mismatches"], again["load_words"]) == (0, 0), again


@pytest.mark.sim
def test_bitfab_run_drives_a_cnn_on_the_simulated_board(tmp_path):
    """A convolutional network with a pool on the simulated board: its images go down
    pixel by pixel, its scores come back equal to the golden model's, and another
    model of the same plan loads into it."""
    out = tmp_path / "cnn"
    run_flow(BuildConfig(out=str(out), stop_step="emit_rtl"), cnn_graph(1, pool=True),
             log=lambda _: None)
    for model in (None, cnn_graph(2, pool=True)):
        result = run_on_board(out, "sim", model, images=3, log=print)
        assert (result["images"], result["mismatches"]) == (3, 0), result
        # 64 pixels of 5 planes a beat (a command byte and 1), and the head's beats.
        configs = plan_from_dict(json.loads(artifact(out, "plan.json").read_text()))[0]
        wire = WireFormat.of_layers(configs)
        assert result["wire_bytes_per_image"] == 64 * 2 + configs[-1].groups * wire.out_bytes
    with pytest.raises(BitfabError, match=r"layer conv1: pool is None in the model"):
        run_on_board(out, "sim", cnn_graph(1), images=1)


def _verilog(component, name):
    from amaranth.back import verilog
    return verilog.convert(component, name=name)


def test_bitfab_run_without_a_build_says_what_is_missing(tmp_path, capsys):
    from bitfab.hls_gen.cli import main
    assert main(["run", str(tmp_path), "--images", "1"]) == 2
    assert "plan.json is missing: run the step that writes it first" in capsys.readouterr().err
    assert main(["run", str(tmp_path), "--images", "0"]) == 2
    assert "images must be a positive number of test images, not 0" in capsys.readouterr().err
    assert main(["run", str(tmp_path), "--no-load"]) == 2
    assert "--no-load needs a board that holds weights" in capsys.readouterr().err


def _cpu_seconds(pid):
    """User and system CPU seconds of process `pid` and its children that have ended."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(v) for v in fields[11:15]) / os.sysconf("SC_CLK_TCK")


@pytest.mark.sim
def test_an_idle_simulated_board_sleeps(tmp_path):
    """With no host talking, the simulated board uses under 5% of a core (it simulated
    the idle design as fast as it could, about 85%), and a host that comes later is
    served at once."""
    graph = small_graph(3)
    configs = fold(map_to_hw(graph))
    design = shell_verilog(NetworkInstance(configs),
                           network_v=_verilog(Network(configs), "network"))
    with SimulatedBoard(design, tmp_path) as board:
        # The simulator: this process's child running the Verilated top, `board`.
        children = [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()
                    and _parent(p) == os.getpid() and _command(p).endswith("/board")]
        assert len(children) == 1, children

        def cpu(seconds):
            before = sum(_cpu_seconds(pid) for pid in children)
            time.sleep(seconds)
            return sum(_cpu_seconds(pid) for pid in children) - before

        # Simulating QUIET_CYCLES of the idle design takes a second or so, more on a
        # busy machine; then the board sleeps.
        deadline = time.monotonic() + 30      # within the bench's wait for a host
        while cpu(1) > 0.05 and time.monotonic() < deadline:
            pass
        used = cpu(4)
        assert used < 0.05 * 4, f"{used:.2f} CPU seconds in 4 s idle"
        pixels = torch.randint(0, 8, (3, 16), generator=torch.Generator().manual_seed(5))
        wire = WireFormat.of_layers(configs)
        start = time.monotonic()
        with Host(open_link(board.url, timeout=30), wire, timeout=60) as host:
            host.load(load_stream(graph, configs), configs)
            scores = host.scores(configs, pixels, graph.layers[0].input_encoding)
        assert scores == graph.run(pixels)[0].tolist()
        assert time.monotonic() - start < 60


def _command(proc):
    try:
        return (proc / "cmdline").read_text().split("\0")[0]
    except OSError:
        return ""


def _parent(proc):
    try:
        return int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None
