"""Bad input at the command line: a one-line error naming the problem and exit status
2, no traceback, and no step output a later ``--start`` would take as good."""

import argparse
import json
import re

import pytest

from bitfab.hls_gen import cli
from bitfab.hls_gen.golden.ir import graph_to_dict
from networks import cnn_graph


@pytest.fixture(scope="module")
def golden(tmp_path_factory):
    return graph_to_dict(cnn_graph(1))


def _edited(golden, edit):
    value = json.loads(json.dumps(golden))
    edit(value)
    return json.dumps(value)


def _thresholds_beyond_their_width(value):
    value["nodes"][0]["thresholds"][0][0] = 10 ** 12


def _no_widths(value):
    del value["nodes"][1]["widths"]


def _weights_not_bits(value):
    value["nodes"][2]["weight_bits"][0][0] = 2


CASES = {
    # name: (model file text or None for missing, extra arguments, message)
    "missing": (None, [], "model file .*missing.json does not exist"),
    "empty": ("", [], r"model file .*empty.json is not valid JSON \(Expecting value"),
    "truncated": (lambda g: json.dumps(g)[:500], [], "model file .*truncated.json is not "
                  "valid JSON"),
    "not_an_object": ("[1, 2]", [], "is not a golden model"),
    "wrong_format": (lambda g: _edited(g, lambda v: v.update(format="x")), [],
                     "not a bitfab golden model .format 'x'"),
    "threshold_beyond_width": (lambda g: _edited(g, _thresholds_beyond_their_width), [],
                               r"layer conv1: thresholds 1000000000000 at \(0, 0\) does not "
                               r"fit its recorded \d+ signed bits"),
    "field_missing": (lambda g: _edited(g, _no_widths), [],
                      "not a well-formed bitfab golden model: missing field 'widths'"),
    "weights_not_bits": (lambda g: _edited(g, _weights_not_bits), [],
                         "layer head: weight_bits must hold bits 0 and 1 only"),
    "folding_zero": (json.dumps, ["--fold", "0x9,1x36,1x96"],
                     "layer conv1: pe=0 does not divide its 4 output rows"),
    "folding_garbage": (json.dumps, ["--fold", "abc"], "folding must look like"),
    "folding_negative": (json.dumps, ["--fold", "-1x9,1x36,1x96"],
                         "folding '-1x9': PE, SIMD and multipliers cannot be negative"),
    "folding_too_few": (json.dumps, ["--fold", "1x9"], "folding gives 1 layers, the network "
                        "has 3"),
    "folding_names_no_layer": (json.dumps, ["--fold", "conv1=1x9,nowhere=1x36"],
                               r"folding names nowhere, which is no layer of the network; its "
                               r"layers: conv1, \w+, head"),
    "folding_named_zero": (json.dumps, ["--fold", "conv1=0x9"],
                           "layer conv1: pe=0 does not divide its 4 output rows"),
    "folding_half_named": (json.dumps, ["--fold", "conv1=1x9,1x36"],
                           "name every layer once .NAME=PExSIMD,.... or none"),
    "board_unknown": (json.dumps, ["--board", "de10-nano"],
                      r"argument --board: invalid choice: 'de10-nano' \(choose from"),
    "clock_zero": (json.dumps, ["--clock-mhz", "0"], "argument --clock-mhz: must be a number "
                   "above 0, at most 500"),
    "clock_beyond_pll": (json.dumps, ["--clock-mhz", "450"], "the ulx3s-85f PLL makes"),
    "out_unwritable": (json.dumps, ["--out", "/proc/no/such/dir"], "No such file or "
                       "directory: '/proc/no"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_build_input_is_one_line_and_exit_2(name, golden, tmp_path, capsys):
    text, extra, message = CASES[name]
    model = tmp_path / f"{name}.json"
    if text is not None:
        model.write_text(text(golden) if callable(text) else text)
    out = tmp_path / "out"
    args = ["build", str(model), "--out", str(out), "--stop", "fold", *extra]
    if "--out" in extra:
        args = ["build", str(model), "--stop", "fold", *extra]
    code = cli.main(args)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2, (code, err)
    assert len(err) == 1 and "error:" in err[0], err
    assert re.search(message, err[-1]), err[-1]
    # Nothing a later --start would take as a good step.
    assert not (out / "fold" / "plan.json").exists()


def test_a_chain_s_folding_by_layer_name_is_its_folding_by_position(golden, tmp_path):
    model = tmp_path / "model.json"
    model.write_text(json.dumps(golden))
    names = [node["name"] for node in golden["nodes"]]
    plans = []
    for fold in ("2x9,1x36,1x96", f"{names[0]}=2x9,{names[1]}=1x36,{names[2]}=1x96"):
        out = tmp_path / f"out{len(plans)}"
        assert cli.main(["build", str(model), "--out", str(out), "--stop", "fold",
                         "--fold", fold]) == 0
        plans.append(json.loads((out / "fold" / "plan.json").read_text())["layers"])
    assert plans[0] == plans[1] and plans[0][0]["pe"] == 2


def test_run_on_a_directory_that_is_not_a_build(tmp_path, capsys):
    assert cli.main(["run", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "error:" in err[0], err


_OWN_NET = '''
import sys
import torch
from torch import nn
from bitfab.hls_gen.frontend.layers import BitplaneInput, XNORLinear


class OwnNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.input, self.head = BitplaneInput(), XNORLinear(64, 10)

    def forward(self, pixels):
        return self.head(self.input(pixels))


if __name__ == "__main__":
    if sys.argv[1].endswith(".pt2"):
        pixels = torch.randint(0, 17, (1, 64)).float()
        torch.export.save(torch.export.export(OwnNet().eval(), (pixels,)), sys.argv[1])
    else:
        torch.save(OwnNet(), sys.argv[1])
'''


@pytest.mark.parametrize("where", ["script", "module"])
def test_a_pickled_model_whose_class_cannot_be_imported_is_one_line(where, tmp_path, capsys):
    """The class lives in the user's script (pickled as __main__.OwnNet) or in a module of
    theirs that bitfab's process cannot import."""
    import subprocess
    import sys
    source = tmp_path / "own_net.py"
    source.write_text(_OWN_NET)
    model = tmp_path / "own.pt"
    command = ([sys.executable, str(source), str(model)] if where == "script" else
               [sys.executable, "-c", f"import sys, torch, own_net; "
                                      f"torch.save(own_net.OwnNet(), {str(model)!r})"])
    subprocess.run(command, check=True, cwd=tmp_path)
    code = cli.main(["build", str(model), "--out", str(tmp_path / "out"), "--stop", "fold"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    needed = "a class .*OwnNet" if where == "script" else "module 'own_net'"
    assert re.search(f"own.pt: the pickled module needs {needed}.*, which cannot be imported "
                     f"here; where it imports, save the model as a torch.export program, "
                     f"which needs no class: torch.export.save", err[0])


def test_a_model_whose_class_is_in_the_users_script_builds_from_its_torch_export_program(
        tmp_path):
    """The way out the error above names: the script saves a torch.export program, and
    bitfab builds it without the class (the golden model is the module's own)."""
    import json
    import subprocess
    import sys
    source = tmp_path / "own_net.py"
    source.write_text(_OWN_NET)
    program = tmp_path / "own.pt2"
    subprocess.run([sys.executable, str(source), str(program)], check=True, cwd=tmp_path)
    out = tmp_path / "out"
    assert cli.main(["build", str(program), "--out", str(out), "--stop", "fold"]) == 0
    golden = json.loads((out / "golden" / "golden.json").read_text())
    assert [node["name"] for node in golden["nodes"]] == ["head"]


def _numeric_options():
    """(command, option, smallest value it takes) of every numeric option of the CLI,
    found in the parser (so a new option is enumerated without a listing)."""
    top = cli.parser()
    commands = next(a for a in top._actions if isinstance(a, argparse._SubParsersAction))
    found = []
    for name, sub in commands.choices.items():
        for action in sub._actions:
            kind = getattr(action.type, "__name__", "")
            if kind in ("integer", "number"):
                low = action.type("0") if kind == "integer" and _takes(action, "0") else None
                found.append((name, action.option_strings[0], low))
    return found


def _takes(action, text):
    try:
        action.type(text)
    except argparse.ArgumentTypeError:
        return False
    return True


def test_every_numeric_option_is_enumerated():
    options = {(c, o) for c, o, _ in _numeric_options()}
    assert {("demo", "--coef-bits"), ("demo", "--acc-bits"), ("build", "--clock-mhz"),
            ("sim", "--images"), ("build", "--netlist-images"), ("run", "--timeout"),
            ("deploy", "--timeout"), ("run", "--images"), ("sweep", "--epochs"),
            ("sweep", "--sim-images"), ("sweep", "--workers"), ("demo", "--workers")} <= options


@pytest.mark.parametrize("command,option,low", _numeric_options(),
                         ids=lambda v: str(v))
def test_every_numeric_option_refuses_zero_negative_huge_and_non_numeric_values(
        command, option, low, tmp_path, capsys):
    """Each refused while the command line is read (nothing built, no folder made): one
    line naming the command, the option, the range and the value; exit status 2."""
    model = tmp_path / "model.json"
    model.write_text("{}")
    build = tmp_path / "build"
    build.mkdir()
    (build / "config.json").write_text("{}")
    head = {"demo": ["demo", "--out", str(tmp_path / "demo")],
            "build": ["build", str(model), "--out", str(tmp_path / "out")],
            "sim": ["sim", str(model), "--out", str(tmp_path / "out")],
            "sweep": ["sweep", "--space", '{"m": [2]}', "--out", str(tmp_path / "out")]}.get(
        command, [command, str(build)] + (["--port", "sim"] if command == "deploy" else []))
    values = ["-1", "1e12", "99999999999999", "abc", "nan", "inf"]
    if low is None:
        values.append("0")
    for value in values:
        code = cli.main(head + [option, value])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1, (value, err)
        assert re.match(f"bitfab {command}: error: argument {option}: must be (an integer "
                        f"in|a number above 0)", err[0]), err
        assert value in err[0]
    assert not (tmp_path / "out").exists() and not (tmp_path / "demo").exists()


@pytest.mark.parametrize("case", ["out_is_a_file", "out_not_writable", "model_is_a_folder",
                                  "build_is_not_a_build", "build_is_a_file"])
def test_every_path_option_is_checked_before_any_work(case, tmp_path, capsys):
    model = tmp_path / "model.json"
    model.write_text("{}")
    args, text = {
        "out_is_a_file": (["build", str(model), "--out", str(model)],
                          r"argument --out: .*model.json is a file, not a directory"),
        "out_not_writable": (["sim", str(model), "--out", str(model / "out")],
                             r"argument --out: .*model.json/out: cannot write in "
                             r".*model.json"),
        "model_is_a_folder": (["build", str(tmp_path), "--out", str(tmp_path / "o")],
                              r"argument model: model file .* is a directory, not a model"),
        "build_is_not_a_build": (["run", str(tmp_path)],
                                 r"argument build: .* is not a bitfab build \(no config.json"),
        "build_is_a_file": (["board", str(model)],
                            r"argument build: .*model.json is not a directory"),
    }[case]
    code = cli.main(args)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert re.search(text, err[0]), err
