"""The host driver and its wire protocol: frames checked before they are sent, replies by
their length, and a whole session against the simulated board (the shell's Verilog
in Verilator behind a TCP port), weights changed on the running board."""

import binascii
import json
import os
import time
from pathlib import Path

import pytest
import torch

from bitfab.hls_gen.compiler.deploy import deploy_weights, run_on_board, simulated_board
from bitfab.hls_gen.errors import BitfabError
from bitfab.hls_gen.compiler.flow import BuildConfig, artifact, run_flow
from bitfab.hls_gen.compiler.folding import fold
from bitfab.hls_gen.compiler.plan import map_to_hw, plan_from_dict
from bitfab.hls_gen.compiler.stores import load_stream
from bitfab.rtl.network import Network, NetworkInstance
from bitfab.sim.board import SimulatedBoard, shell_verilog
from bitfab.sw_driver.host import Host, open_link
from bitfab.rtl.shell import CRC_INIT, STATUS
from bitfab.sw_driver.protocol import (Reply, ShellModel, WireError, WireFormat, frame,
                                       input_frames, load_crc, load_frames, parse_reply,
                                       unframe)
from networks import cnn_graph, digits_graph, small_graph

WIRE = WireFormat.of_widths(load_bits=32, in_bits=12, out_bits=20)


class FakeBoard(ShellModel):
    """A link to a board of `plan_words` load words whose core answers each item of
    `beats` input beats with one output beat, their sum; its receive side is
    `ShellModel`. `silent` items get no answer; a status request gets none while
    `mute` is above 0 (counting down). It records the most items in flight."""

    def __init__(self, beats, plan_words=2, silent=(), mute=0):
        super().__init__(WIRE, plan_words)
        self.beats, self.silent, self.mute = beats, set(silent), mute
        self.reply, self.outputs, self.out_crc = bytearray(), 0, CRC_INIT
        self.most_in_flight = 0

    def write(self, data):
        for byte in bytes(data):
            taken, checks = len(self.taken), len(self.checks)
            self.feed(bytes([byte]))
            if len(self.taken) > taken and len(self.taken) % self.beats == 0:
                self._answer(len(self.taken) // self.beats - 1)
            if len(self.checks) > checks:
                self._send_status()

    def _answer(self, item):
        # In flight: this item and those whose outputs wait unread.
        unread = [unframe(f) for f in bytes(self.reply).split(b"\0")[:-1]]
        in_flight = 1 + sum(1 for f in unread if f and f[0] == ord("O"))
        self.most_in_flight = max(self.most_in_flight, in_flight)
        if item in self.silent:
            return
        beat = sum(self.taken[-self.beats:])
        self.out_crc = binascii.crc_hqx(beat.to_bytes(WIRE.out_bytes, "little"), self.out_crc)
        self.reply += frame(bytes([ord("O")]) + self.outputs.to_bytes(2, "little")
                            + beat.to_bytes(WIRE.out_bytes, "little"))
        self.outputs += 1

    def _send_status(self):
        if self.mute:
            self.mute -= 1
            return
        fields = {**self.statuses[-1], "framing_errors": 0, "overruns": 0,
                  "out_crc": self.out_crc, "outputs": self.outputs}
        self.out_crc = CRC_INIT
        body = b"".join(fields[name].to_bytes(size, "little") for name, size in STATUS)
        self.reply += frame(bytes([ord("S"), self.checks[-1]]) + body)

    def flush(self):
        pass

    def read(self, n):
        data, self.reply = bytes(self.reply[:n]), self.reply[n:]
        return data

    def close(self):
        pass


def test_frames_are_checked_before_they_are_sent():
    assert WIRE.item_bytes(in_beats=8, out_beats=10) == 8 * (1 + 2 + 2 + 2 + 2) + 10 * (
        1 + 2 + 3 + 2 + 2)
    with pytest.raises(WireError, match=r"input beat 1 is 4096, not a 12-bit unsigned"):
        input_frames([0, 1 << 12], WIRE)
    with pytest.raises(WireError, match=r"load word 0 is -1, not a 32-bit unsigned"):
        load_frames([-1], WIRE)
    with pytest.raises(WireError, match=r"input beat 0 is 4096"):
        Host(FakeBoard(beats=1), WIRE, timeout=0.2).run([[1 << 12]], out_beats=1)


def test_replies_are_checked_by_their_kind_length_and_width():
    def reply(data):
        return parse_reply(unframe(frame(data)[:-1]), WIRE)
    assert reply(b"O\x05\x00\x01\x00\x00") == Reply("output", 5, 1)
    assert reply(b"O\x05\x00\x01\x00\x10") is None           # wider than 20 bits
    assert reply(b"O\x05\x00\x01\x00") is None                # too short
    assert reply(b"X\x05\x00\x01\x00\x00") is None           # no such reply
    assert unframe(frame(b"O\x05\x00\x01\x00\x00")[:-3]) is None   # cut


def test_host_keeps_a_window_of_items_in_flight():
    items = [[k, 2 * k, 3 * k] for k in range(10)]
    board = FakeBoard(beats=3)
    host = Host(board, WIRE, timeout=0.2, window=2)
    host.load([5, 6])
    got = host.run(items, out_beats=1)
    assert got == [[6 * k] for k in range(10)]
    assert host.faults == [] and board.most_in_flight == 2


def test_the_host_mends_faults_on_the_line():
    """A frame cut on the way to the board (its beats go again from the first the
    board lacks), an output frame changed on the way back (its item runs again), a
    status that gets no reply (asked again), a load word changed (sent again): the
    results are right and `faults` says what was mended."""
    items = [[k, 2 * k] for k in range(6)]
    want = [[3 * k] for k in range(6)]
    board = FakeBoard(beats=2)
    # Written: the load (13 bytes to restart, 2 words of 12, a status of 7), the run's
    # status (7), then input frames of 9 bytes: byte 82 is inside item 1's second.
    host = Host(CutWrite(board, at=[82]), WIRE, timeout=0.2)
    host.load([5, 6])
    assert host.run(items, out_beats=1) == want
    assert any("input beats from" in fault for fault in host.faults), host.faults

    board = FakeBoard(beats=2)
    # Read: three statuses of 28 bytes, then output frames of 10: item 1's is 94..103.
    host = Host(ChangedRead(board, at=[99]), WIRE, timeout=0.2)
    host.load([5, 6])
    assert host.run(items, out_beats=1) == want
    assert any("again: its output beats were lost" in f for f in host.faults), host.faults

    board = FakeBoard(beats=2, mute=1)
    host = Host(board, WIRE, timeout=0.2)
    assert host.load([5, 6]).crc == load_crc([5, 6], WIRE)
    assert host.faults[0].endswith("no reply within 0.2 s")

    host = Host(ChangedByte(FakeBoard(beats=2), at=20), WIRE, timeout=0.2)
    assert host.load([5, 6]).words == 2
    assert any(f.startswith("load words 0..1 again") for f in host.faults), host.faults


def test_what_the_host_cannot_mend_is_named():
    with pytest.raises(WireError, match=r"the board's status: no reply to 4 requests, 0.1 s "
                                        r"each"):
        Host(FakeBoard(beats=1, mute=10), WIRE, timeout=0.1).load([1, 2])
    with pytest.raises(WireError, match=r"loaded after 2 of the 3 load words: it runs a "
                                        r"bitstream of another plan"):
        Host(FakeBoard(beats=1), WIRE, timeout=0.1).load([1, 2, 3])
    host = Host(FakeBoard(beats=1, silent={0, 1}), WIRE, timeout=0.1)
    host.load([1, 2])
    with pytest.raises(WireError, match=r"item 0's output: 0 of 1 beats came, 4 times"):
        host.run([[1], [2]], out_beats=1)


class CutWrite:
    """A link that loses the bytes written at offsets `at` (counting from its first
    write), as an overrun would."""

    def __init__(self, link, at):
        self.link, self.at, self.written = link, set(at), 0

    def write(self, data):
        kept = bytes(b for k, b in enumerate(data) if self.written + k not in self.at)
        self.written += len(data)
        self.link.write(kept)

    def __getattr__(self, name):
        return getattr(self.link, name)


class ChangedRead:
    """A link that flips bit 0 of the bytes read at offsets `at` (counting from its
    first read)."""

    def __init__(self, link, at):
        self.link, self.at, self.read_so_far = link, set(at), 0

    def read(self, n):
        data = bytearray(self.link.read(n))
        for k in range(len(data)):
            if self.read_so_far + k in self.at:
                data[k] ^= 1
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
        # A bit changed on the line (byte 20: in word 0's frame) costs that frame: the
        # board skips the words after it, the host sends them again from word 0.
        with Host(ChangedByte(link, at=20), wire, timeout=60) as host:
            for graph, want in zip(graphs, wants):
                status = host.load(load_stream(graph, configs), configs)
                assert (status.words, status.loaded) == (len(words), 1)
                assert host.scores(configs, pixels, graph.layers[0].input_encoding) == want
            assert host.faults[0].startswith("load words 0..")
            assert len(host.faults) == 1, host.faults


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
        # Per image, 8 input beats of 8 pixels in 5 planes (40 bits, 5 bytes: a frame of
        # 10 with command, index and CRC, 12 on the line) and 2 output beats of 5
        # scores of 5 bits (25 bits, 4 bytes: frames of 11): 118 bytes, 97.6 images/s
        # at 11,520 bytes/s.
        assert (result["wire_bytes_per_image"], result["link_images_per_s"]) == (118, 97.6)
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
        # 64 pixels of 5 planes a beat (a byte, in frames of 8 on the line), and the
        # head's beats (frames of 7 and their bytes).
        configs = plan_from_dict(json.loads(artifact(out, "plan.json").read_text()))[0]
        wire = WireFormat.of_layers(configs)
        assert result["wire_bytes_per_image"] == 64 * 8 + configs[-1].groups * (
            7 + wire.out_bytes)
    with pytest.raises(BitfabError, match=r"layer conv1: pool is None in the model"):
        run_on_board(out, "sim", cnn_graph(1), images=1)


def _verilog(component, name):
    from amaranth.back import verilog
    return verilog.convert(component, name=name)


def test_bitfab_run_without_a_build_says_what_is_missing(tmp_path, capsys):
    from bitfab.hls_gen.cli import main
    assert main(["run", str(tmp_path), "--images", "1"]) == 2
    assert "is not a bitfab build (no config.json" in capsys.readouterr().err
    (tmp_path / "config.json").write_text("{}")
    assert main(["run", str(tmp_path), "--images", "1"]) == 2
    assert "plan.json is missing: run the step that writes it first" in capsys.readouterr().err
    assert main(["run", str(tmp_path), "--images", "0"]) == 2
    assert "argument --images: must be an integer in 1..100000, not '0'" in (
        capsys.readouterr().err)
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
