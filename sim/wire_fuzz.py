"""A fuzzer for the shell's wire protocol: malformed sequences against a board (real or
simulated), each followed by a status that must be exactly what `ShellModel`
predicts from the bytes sent.

    with Host(TappedLink(link, model), wire) as host:
        counts = fuzz(host, model, words, count=10_000, seed=1)

`fuzz_simulated_board` does it on a simulated board of a digits network, then
loads it cleanly and runs every digits test image against the golden model
(`tests/test_wire_fuzz.py`, `benchmarks/wire_fuzz.py`).

Kinds (`KINDS`): garbage, frames cut short, frames too long, bits flipped in
frames, a frame cut by another (a host that restarts mid-frame), load words
beyond the plan or out of order, input beats before the weights or out of
order, and bursts of status requests. Any difference between a status and its
prediction raises `FuzzMismatch` naming the sequence, its kind and its bytes; a
status that does not come raises `WireError` from the host (every read has a
deadline), so the fuzzer never hangs.
"""

import random
import time
from collections import Counter
from dataclasses import dataclass

from bitfab.sw_driver.protocol import (check_frame, frame, input_frames, load_frames,
                                       restart_frame)

__all__ = ["KINDS", "FuzzMismatch", "TappedLink", "fuzz", "BoardTarget", "fuzz_simulated_board"]

KINDS = ("garbage", "cut", "oversized", "flipped", "restart_mid_frame", "load_beyond_plan",
         "load_out_of_order", "inputs_before_weights", "inputs_out_of_order", "status_burst")
MODEL_FIELDS = ("crc", "words", "loaded", "in_crc", "dropped", "skipped", "refused", "inputs")


class FuzzMismatch(AssertionError):
    """A status that is not what the model predicts: a silent corruption or a count
    that does not say what happened."""


class TappedLink:
    """`link`, every byte written also fed to `model` (a `ShellModel`)."""

    def __init__(self, link, model):
        self.link, self.model = link, model

    def write(self, data):
        self.model.feed(data)
        return self.link.write(data)

    def __getattr__(self, name):
        return getattr(self.link, name)


def _valid_frames(rng, host, model, words):
    """A well-formed frame of each command but ``R`` (a whole one costs a reload),
    with the indices the board expects now."""
    wire = host.wire
    beat = rng.randrange(1 << wire.in_bits)
    word_at = min(model.words, len(words) - 1)
    return [check_frame(rng.randrange(256)),
            load_frames([words[word_at]], wire, start=model.words),
            input_frames([beat], wire, start=model.inputs)]


def _sequence(kind, rng, host, model, words):
    """The bytes of one sequence of `kind` (the board loaded, unless the kind says)."""
    wire = host.wire
    frames = _valid_frames(rng, host, model, words)
    if kind == "garbage":
        return bytes(0 if rng.random() < 0.1 else rng.randrange(1, 256)
                     for _ in range(rng.randrange(1, 40))) + b"\0"
    if kind == "cut":
        whole = rng.choice(frames)
        return whole[:rng.randrange(1, len(whole) - 1)] + b"\0"
    if kind == "oversized":
        if rng.random() < 0.5:      # a well-formed frame, its CRC right, bytes too many
            command = rng.choice(b"RCLI")
            body = bytes(rng.randrange(256) for _ in range(
                wire.sizes[command] - 3 + rng.randrange(1, 240)))
            return frame(bytes([command]) + body)
        return bytes(rng.randrange(1, 256) for _ in range(rng.randrange(255, 600))) + b"\0"
    if kind == "flipped":
        whole = bytearray(rng.choice(frames + [restart_frame()]))
        # 1 to 3 distinct bits (two flips of one bit would give the frame back whole).
        for bit in rng.sample(range(8 * (len(whole) - 1)), rng.randrange(1, 4)):
            whole[bit // 8] ^= 1 << bit % 8
        return bytes(whole)
    if kind == "restart_mid_frame":
        first, second = rng.choice(frames), rng.choice(frames)
        return first[:rng.randrange(1, len(first) - 1)] + second
    if kind == "load_beyond_plan":
        extra = [rng.randrange(1 << wire.load_bits) for _ in range(rng.randrange(1, 4))]
        return load_frames(extra, wire, start=len(words))
    if kind == "load_out_of_order":
        start = rng.choice([k for k in range(len(words) + 5) if k != model.words])
        return load_frames([rng.randrange(1 << wire.load_bits)], wire, start=start)
    if kind == "inputs_before_weights":
        beats = [rng.randrange(1 << wire.in_bits) for _ in range(rng.randrange(1, 4))]
        return restart_frame() + input_frames(beats, wire)
    if kind == "inputs_out_of_order":
        start = (model.inputs + rng.randrange(1, 1 << 16)) % (1 << 16)
        return input_frames([rng.randrange(1 << wire.in_bits)], wire, start=start)
    raise ValueError(f"no fuzz kind {kind!r}")


def _compare(index, kind, sent, status, predicted):
    got = {name: getattr(status, name) for name in MODEL_FIELDS}
    if got != predicted:
        differ = {name: (got[name], predicted[name]) for name in got
                  if got[name] != predicted[name]}
        raise FuzzMismatch(f"sequence {index} ({kind}): the board's status differs from the "
                           f"model's (board, model): {differ}; bytes sent {sent.hex()}")


def fuzz(host, model, words, count, seed, log=None):
    """`count` sequences of random `KINDS` (`seed`) through `host` (over a `TappedLink`
    into `model`), the board loaded with `words` before each kind that needs it.
    Returns the counts: sequences per kind, statuses compared, the board's dropped,
    skipped and refused frames summed, clean loads."""
    rng = random.Random(seed)
    counts = Counter()
    for index in range(count):
        if not model.loaded:
            host.load(words)
            counts["loads"] += 1
        kind = rng.choice(KINDS)
        counts[kind] += 1
        if kind == "status_burst":
            tags = [(host.tag + 1 + k) % 256 for k in range(rng.randrange(2, 9))]
            sent = b"".join(check_frame(tag) for tag in tags)
            host.send_raw(b"\0" + sent)
            statuses = _burst(host, tags, index)
        else:
            sent = _sequence(kind, rng, host, model, words)
            host.send_raw(sent)
            statuses = [host.status()]
        predicted = model.statuses[-len(statuses):]
        for status, fields in zip(statuses, predicted):
            _compare(index, kind, sent, status, fields)
            for name in ("dropped", "skipped", "refused"):
                counts[name] += getattr(status, name)
            counts["statuses"] += 1
        if log and index % 1000 == 999:
            log(f"fuzz: {index + 1} sequences, {counts['statuses']} statuses as predicted")
    return counts


def _burst(host, tags, index):
    """The replies to status requests `tags`, sent together: each must come, once, in
    order, none merged into another."""
    host.tag = tags[-1]
    got = []
    deadline = time.monotonic() + host.timeout
    while len(got) < len(tags):
        reply = host.next_reply(deadline)
        if reply is None:
            raise FuzzMismatch(f"sequence {index} (status_burst): {len(got)} of "
                               f"{len(tags)} statuses came within {host.timeout} s")
        if reply.kind == "status":
            got.append(reply)
    if [r.number for r in got] != tags:
        raise FuzzMismatch(f"sequence {index} (status_burst): tags {[r.number for r in got]}"
                           f" for requests {tags}")
    return [r.value for r in got]


@dataclass(frozen=True)
class BoardTarget:
    """What a simulated board runs and what it must answer, as the compiler made it
    (the compiler's ``deploy.board_target``): the shell's Verilog (module
    ``board``, the bare `FrameShell`), its load words and `WireFormat`, the network's
    layer configs, the test inputs and their encoding, and the golden scores."""

    design: str
    words: list
    wire: object
    configs: list
    pixels: object
    encoding: str
    golden: object


def fuzz_simulated_board(target, root, sequences, seed, log=print):
    """`sequences` fuzz sequences (`seed`) on a simulated board of `target` (a
    `BoardTarget`; the shell's byte streams, in Verilator under `root`); then a clean
    load and every test input. A status that differs from the model's raises
    `FuzzMismatch`, one that does not come `WireError`. Returns the figures: the
    counts of `fuzz` (``statuses``: every one as predicted), ``seconds`` of fuzzing,
    ``images``, ``mismatches`` against the golden model, ``inputs_taken`` during the
    fuzz (0: no sequence carried a whole input frame in order), the host's
    ``faults`` mended (none: it has no retries, so a missing status fails the
    call)."""
    import torch

    from bitfab.sim.board import SimulatedBoard
    from bitfab.sw_driver.host import Host, open_link
    from bitfab.sw_driver.protocol import ShellModel

    words, wire = target.words, target.wire
    model = ShellModel(wire, len(words))
    with SimulatedBoard(target.design, root, uart=False, optimize=True) as board:
        start = time.monotonic()
        with Host(TappedLink(open_link(board.url, timeout=30), model), wire, timeout=60,
                  retries=0) as host:
            counts = fuzz(host, model, words, sequences, seed, log=log)
            seconds = time.monotonic() - start
            taken = len(model.taken)
            host.load(words)
            scores = torch.tensor(host.scores(target.configs, target.pixels, target.encoding))
            faults = len(host.faults)
    wrong = (scores != target.golden).any(dim=1)
    return {"sequences": sequences, "seed": seed, **{kind: counts[kind] for kind in KINDS},
            **{name: counts[name] for name in ("statuses", "dropped", "skipped", "refused",
                                               "loads")},
            "inputs_taken": taken, "faults": faults,
            "seconds": round(seconds, 1), "images": len(target.pixels),
            "mismatches": int(wrong.sum())}
