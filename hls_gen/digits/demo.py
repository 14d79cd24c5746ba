"""The main job on defaults: digits -> float / PA / XNOR networks -> golden models -> report.

Trains (or loads from ``DIR/models``) a full-precision, a PA (M=4, N=5), a PA
(M=8, N=7) and an XNOR network, for the MLP and the CNN; the quantized ones
start from the trained full-precision weights (as the thesis does) and are
frozen into golden models. Writes ``DIR/report.json``.
"""

import copy
import json
import os
import time
import uuid
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch

from bitfab.hls_gen.datasets import SPLIT_SEED, TEST_FRACTION, load_digits_split
from bitfab.hls_gen.compiler.cluster import dask_client, forward_logs, task_log
from bitfab.hls_gen.compiler.flow import BuildConfig, run_flow
from bitfab.hls_gen.compiler.progress import Progress, stdout_if_print
from bitfab.hls_gen.compiler.report import source_commit
from bitfab.hls_gen.golden.freeze import FreezeConfig, freeze
from bitfab.hls_gen.golden.ir import graph_from_dict, graph_to_dict
from bitfab.hls_gen.digits.models import ModelSpec, build_model
from bitfab.hls_gen.digits.train import TrainConfig, accuracy, init_from, predict, train

__all__ = ["DemoConfig", "run_demo", "train_from_float"]


@dataclass(frozen=True)
class DemoConfig:
    """Everything the demo depends on; the cache of trained models is keyed on it."""

    archs: tuple = ("cnn", "mlp")    # the first is the default model's
    hidden: int = 128
    pa_default: tuple = (4, 5)
    pa_large: tuple = (8, 7)
    float_training: TrainConfig = TrainConfig()
    # Quantized networks fine-tune from the float weights at a lower rate.
    quantized_training: TrainConfig = TrainConfig(lr=1e-3)
    freeze: FreezeConfig = field(default_factory=FreezeConfig)
    # Hardware: every arch's PA and XNOR networks go through the build flow.
    board: str = "ulx3s-85f"
    bitstream: bool = True          # the default model's; the others are simulated only
    sim_images: int | None = None   # None: the whole test split
    # Where the work runs (`cluster.dask_client`): a scheduler, else a LocalCluster.
    scheduler: str | None = None
    workers: int = 2

    def specs(self, arch):
        """(spec, starts from float?) in training order."""
        return [
            (ModelSpec(arch, "float", hidden=self.hidden), False),
            (ModelSpec(arch, "pa", *self.pa_default, hidden=self.hidden), True),
            (ModelSpec(arch, "pa", *self.pa_large, hidden=self.hidden), True),
            (ModelSpec(arch, "xnor", hidden=self.hidden), True),
        ]


def _fit(spec, split, training, reference, cache, log):
    """Train `spec` (or load it from `cache` if trained with the same settings)."""
    key = json.dumps({"spec": asdict(spec), "training": asdict(training),
                      "from_float": reference is not None}, sort_keys=True)
    path = cache / f"{spec.name}.pt"
    torch.manual_seed(training.seed)
    model = build_model(spec, split.pixel_bits, split.pixel_scale)
    if path.exists():
        saved = torch.load(path, weights_only=True)
        if saved.get("key") == key:
            model.load_state_dict(saved["state"])
            log(f"  {spec.name:<14} loaded from {path}")
            return model.eval(), 0.0
    if reference is not None:
        init_from(model, reference)
    start = time.perf_counter()
    progress = Progress(f"  {spec.name}", log, stdout_if_print(log))
    train(model, split.x_train, split.y_train, spec.input_shape, training,
          on_epoch=lambda k, n, loss: progress.update("training", f"epoch {k}/{n}, loss "
                                                                  f"{loss:.3f}"))
    progress.close()
    seconds = time.perf_counter() - start
    torch.save({"key": key, "state": model.state_dict()}, path)
    log(f"  {spec.name:<14} trained in {seconds:.1f} s")
    return model, seconds


def train_from_float(spec, split, config=DemoConfig(), log=print):
    """Train `spec`'s float model, then `spec` from it, as the demo trains its models
    (no cache); returns ``{"float": model, spec.kind: model}``, both in eval mode."""
    models = {}
    for kind in ("float", spec.kind):
        training = config.float_training if kind == "float" else config.quantized_training
        torch.manual_seed(training.seed)
        model = build_model(replace(spec, kind=kind), split.pixel_bits, split.pixel_scale)
        if kind != "float":
            init_from(model, models["float"])
        start = time.perf_counter()
        train(model, split.x_train, split.y_train, spec.input_shape, training)
        log(f"{replace(spec, kind=kind).name}: trained in {time.perf_counter() - start:.0f} s")
        models[kind] = model.eval()
    return models


def _layer_report(graph):
    return [{"name": layer.name, "type": type(layer).__name__,
             "input_encoding": layer.input_encoding, **asdict(layer.widths)}
            for layer in graph.layers]


def _model_task(out, config, arch, index, after=None):
    """A task: `arch`'s `index`th model (`DemoConfig.specs`; a quantized one starts
    from the float model, trained by the task `after`) trained or loaded from the
    cache, measured, and, if quantized, frozen into ``models/NAME.golden.json``.
    Returns (name, its report entry)."""
    log = task_log()
    cache = Path(out) / "models"
    split = load_digits_split()
    spec, from_float = config.specs(arch)[index]
    if spec.kind == "float":
        log(f"{arch}: training on {len(split.x_train)} images")
    reference = None
    if from_float:      # trained by `after`: loaded from the cache
        reference, _ = _fit(config.specs(arch)[0][0], split, config.float_training, None,
                            cache, lambda text: None)
    training = config.quantized_training if from_float else config.float_training
    model, seconds = _fit(spec, split, training, reference, cache, log)
    predictions = predict(model, split.x_test, spec.input_shape)
    entry = {"arch": arch, "kind": spec.kind, "accuracy": accuracy(predictions, split.y_test),
             "train_seconds": round(seconds, 2)}
    if spec.kind == "pa":
        entry.update(m=spec.m, n=spec.n)
    if spec.kind != "float":
        graph = freeze(model, config.freeze)
        (cache / f"{spec.name}.golden.json").write_text(json.dumps(graph_to_dict(graph)) + "\n")
        golden = graph.predict(split.x_test.view(-1, *spec.input_shape))
        # The float32 model rounds too: float64 shows what is golden error.
        exact = predict(copy.deepcopy(model).double(), split.x_test, spec.input_shape)
        entry.update(golden_accuracy=accuracy(golden, split.y_test),
                     golden_agreement=accuracy(golden, predictions),
                     golden_agreement_float64=accuracy(golden, exact),
                     layers=_layer_report(graph))
    return spec.name, entry


def _flow_task(cfg, golden, name, after=None):
    """A task: the build flow `cfg` on the golden model in file `golden` (frozen by the
    task `after`), logging as `name`; returns the build's report, or None if the
    flow stops before its report."""
    graph = graph_from_dict(json.loads(Path(golden).read_text()))
    return run_flow(cfg, graph, log=task_log(f"  {name}: "))


def run_demo(out, config=DemoConfig(), log=print):
    """Run the demo into directory `out`; returns the report (also written as JSON).

    Its work runs as Dask tasks (`cluster.dask_client`: `config.scheduler`, else a
    `LocalCluster` of `config.workers` processes): each model's training, each
    hardware model's flow to its simulation, and the default model's place and
    route beside them, from the moment its golden model is frozen; the bitstream
    then joins the default model's build (`BuildConfig.bitstream_of`)."""
    start = time.perf_counter()
    out = Path(out)
    (out / "models").mkdir(parents=True, exist_ok=True)
    split = load_digits_split()
    head = config.archs[0]          # the default model's arch, the report's accuracies'
    default = ModelSpec(head, "pa", *config.pa_default).name
    run = uuid.uuid4().hex[:8]      # this run's task keys, on a scheduler others share
    with dask_client(config.scheduler, config.workers) as client, forward_logs(client, log):
        trained = {}
        for arch in config.archs:
            first = None
            for index, (spec, _) in enumerate(config.specs(arch)):
                # The default model, and the float model it starts from, first.
                urgent = arch == head and spec.name in (f"{arch}_float", default)
                trained[spec.name] = client.submit(
                    _model_task, str(out), config, arch, index, first, pure=False,
                    key=f"train-{spec.name}-{run}", priority=20 if urgent else 10)
                first = first or trained[spec.name]
        builds, placed = {}, None
        for name in _hardware_models(config):
            golden = str(out / "models" / f"{name}.golden.json")
            build = BuildConfig(out=str(out / "hw" / name), board=config.board,
                                sim_images=config.sim_images,
                                bitstream=config.bitstream and name == default)
            if build.bitstream:
                # Place and route as soon as the design exists: it takes longest.
                placed_in = str(out / "pnr" / name)
                placed = client.submit(
                    _flow_task, replace(build, out=placed_in, stop_step="synth",
                                        steps=("golden", "map_to_hw", "fold", "emit_rtl",
                                               "synth")),
                    golden, f"{name} (place and route)", trained[name], pure=False,
                    key=f"pnr-{name}-{run}", priority=30)
                build = replace(build, bitstream_of=placed_in)
            builds[name] = (build, client.submit(
                _flow_task, replace(build, stop_step="netlist"), golden, name, trained[name],
                pure=False, key=f"sim-{name}-{run}"))
        models = dict(client.gather(list(trained.values())))
        hardware = {}
        for name, (build, simulated) in builds.items():
            simulated.result()
            if build.bitstream:
                placed.result()
            # The rest (the bitstream, taken; the report) here, in seconds.
            hardware[name] = run_flow(replace(build, start_step="synth"),
                                      log=lambda text, name=name: log(f"  {name}: {text}"))
    report = {
        "dataset": {"name": "sklearn load_digits", "train_images": len(split.x_train),
                    "test_fraction": TEST_FRACTION, "split_seed": SPLIT_SEED, "stratified": True},
        "test_images": len(split.x_test),
        "default_model": f"{head} PA M={config.pa_default[0]} N={config.pa_default[1]}",
        "accuracy": {
            "float": models[f"{head}_float"]["accuracy"],
            "pa": models[default]["accuracy"],
            "pa_large": models[ModelSpec(head, "pa", *config.pa_large).name]["accuracy"],
            "xnor": models[f"{head}_xnor"]["accuracy"],
            "golden": models[default]["golden_accuracy"],
        },
        "golden_vs_pa_agreement": models[default]["golden_agreement"],
        "freeze": asdict(config.freeze),
        "models": models,
        "commit": source_commit(),
        # Wall time on this machine: training to the bitstream and its verified build.
        "seconds": round(time.perf_counter() - start, 1),
        "machine": {"cores": os.cpu_count(), "workers": None if config.scheduler
                    else config.workers},
    }
    for name, hw in hardware.items():
        models[name]["hardware"] = hw
    # The default model's figures are the report's top-level hardware fields.
    report.update({k: hardware[default][k] for k in (
        "rtl", "board", "luts", "ffs", "brams", "dsps", "fmax_mhz", "clock_mhz", "timing_met",
        "cycles_per_image", "images_per_s", "images_per_s_at_clock", "bitstream")})
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    from bitfab.hls_gen.compiler.html_report import write_demo_page     # matplotlib
    page = write_demo_page(out, report, {name: out / "hw" / name for name in hardware},
                           default=default)
    log("")
    log(format_table(report))
    log(f"\nreport: {out / 'report.json'}, {page}")
    return report


def _hardware_models(config):
    """Every arch's PA model (M, N = `pa_default`) and XNOR model: each goes through the
    flow, its RTL on the test images against its golden model; the default model,
    the first arch's PA model (the PA CNN by default), to a bitstream too."""
    return [name for arch in config.archs
            for name in (ModelSpec(arch, "pa", *config.pa_default).name, f"{arch}_xnor")]


def format_table(report):
    """The report's per-model accuracies as a fixed-width text table."""
    lines = [f"{'model':<16}{'torch acc':>10}{'golden acc':>12}{'golden=torch':>14}"
             f"{'golden=f64':>12}", "-" * 64]
    for name, entry in report["models"].items():
        row = f"{name:<16}{entry['accuracy'] * 100:>9.2f}%"
        if "golden_accuracy" in entry:
            row += (f"{entry['golden_accuracy'] * 100:>11.2f}%"
                    f"{entry['golden_agreement'] * 100:>13.2f}%"
                    f"{entry['golden_agreement_float64'] * 100:>11.2f}%")
        else:
            row += f"{'-':>12}{'-':>14}{'-':>12}"
        lines.append(row)
    lines.append(f"({report['test_images']} test images. 'torch acc': the PyTorch model "
                 f"(float32); 'golden=torch' / 'golden=f64': fraction of images where the "
                 f"integer golden model gives the class of the PyTorch model in float32 / "
                 f"float64)")
    if report.get("rtl"):
        rtl = report["rtl"]
        lines.append(f"RTL ({rtl['simulator']}): {rtl['images']} images, {rtl['mismatches']} "
                     f"mismatches against the golden model; {report['cycles_per_image']} "
                     f"cycles per image")
        if report.get("bitstream"):
            lines.append(f"{report['board']}: {report['luts']} LUTs, {report['ffs']} FFs, "
                         f"{report['brams']} BRAMs, {report['dsps']} DSPs, "
                         f"{report['fmax_mhz']} MHz, {report['images_per_s']} images/s; "
                         f"{report['bitstream']}")
            lines.append(f"timing {'met' if report['timing_met'] else 'NOT MET'} at the "
                         f"{report['clock_mhz']} MHz clock the bitstream runs at "
                         f"({report['images_per_s_at_clock']} images/s there)")
    return "\n".join(lines)
