"""Benchmark: the digits graph networks against the plain CNN of similar size, as they
are, over several seeds.

Each of `bitfab.hls_gen.digits.graphs` (Bi-Real residual blocks, a fractal block, a
NASB cell, dense concatenation, a grouped convolution; 8 channels) and the plain
CNN of the demo narrowed to 8 and 8 channels (`bitfab.hls_gen.digits.models`), as
PA (M = 4, N = 5) and XNOR networks, trained from scratch with the same
`TrainConfig` (Adam, cosine decay) for `--epochs` epochs at each seed, then frozen:
test accuracy on the 450 digits test images (PyTorch, float32), the golden
model's agreement with the PyTorch class (float64), and the binary weights each
network holds. Mean and spread (population standard deviation) over the seeds,
whichever network they favour.

Last line: one JSON object.
"""

import argparse
import json
import statistics
import time

import torch

from bitfab.hls_gen.datasets import load_digits_split
from bitfab.hls_gen.digits.graphs import GRAPH_ARCHS, GraphSpec, build_graph_model
from bitfab.hls_gen.digits.models import ModelSpec, build_model
from bitfab.hls_gen.digits.train import TrainConfig, accuracy, predict, train
from bitfab.hls_gen.frontend.layers import PAConv2d, PALinear, XNORConv2d, XNORLinear
from bitfab.hls_gen.golden.freeze import freeze

CHANNELS = 8
BINARY = (PAConv2d, PALinear, XNORConv2d, XNORLinear)


def _models(kind):
    """(name, arch, a function making a fresh model) of every network compared."""
    plain = ModelSpec("cnn", kind, channels=(CHANNELS, CHANNELS))
    yield f"cnn_{kind}", "cnn", lambda: build_model(plain)
    for arch in GRAPH_ARCHS:
        spec = GraphSpec(arch, kind, channels=CHANNELS)
        yield spec.name.split("_m")[0], arch, lambda spec=spec: build_graph_model(spec)


def _weights(model):
    return sum(m.weight.numel() for m in model.modules() if isinstance(m, BINARY))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    split = load_digits_split()
    pixels = split.x_test.long().view(-1, 1, 8, 8)
    results, start = {}, time.perf_counter()
    for kind in ("xnor", "pa"):
        for name, arch, make in _models(kind):
            runs = []
            for seed in range(args.seeds):
                torch.manual_seed(seed)
                model = make()
                train(model, split.x_train, split.y_train, (1, 8, 8),
                      TrainConfig(epochs=args.epochs, seed=seed))
                torch_classes = predict(model, split.x_test, (1, 8, 8))
                graph = freeze(model)
                with torch.no_grad():
                    float64 = model.double()(pixels.double()).argmax(1)
                runs.append({"accuracy": accuracy(torch_classes, split.y_test),
                             "agreement": accuracy(graph.predict(pixels), float64)})
            accuracies = [r["accuracy"] for r in runs]
            results[name] = {
                "arch": arch, "kind": kind, "binary_weights": _weights(make()),
                "accuracy_mean": statistics.fmean(accuracies),
                "accuracy_std": statistics.pstdev(accuracies),
                "accuracies": accuracies,
                "golden_agreement_min": min(r["agreement"] for r in runs)}
            print(f"{name}: accuracy {100 * results[name]['accuracy_mean']:.2f} +- "
                  f"{100 * results[name]['accuracy_std']:.2f} % over {args.seeds} seeds, "
                  f"golden = PyTorch >= {100 * results[name]['golden_agreement_min']:.2f} %",
                  flush=True)
    print(json.dumps({"epochs": args.epochs, "seeds": args.seeds, "channels": CHANNELS,
                      "test_images": len(split.x_test),
                      "seconds": round(time.perf_counter() - start, 1), "models": results}))


if __name__ == "__main__":
    main()
