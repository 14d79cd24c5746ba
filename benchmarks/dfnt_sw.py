"""DFNT convolution vs direct integer convolution in software (thesis Table 2.3, scaled).

Both run in PyTorch on the CPU, one thread, on the same random INT8 data with
'same' padding: the direct baseline is torch's conv2d on int64 tensors (the same
integer semantics), and, as a second reference, conv2d in float64 (BLAS-backed;
exact here because every partial sum stays below 2^53). The DFNT is the golden
model's `DFNTConv` with the thesis's transform size, modulus 2^32 + 1 (F_5, as
the thesis uses for INT8), which computes with residues and exact float64 matrix
products (the diminished-1 step-by-step computation it is tested against,
`correlate_dim1`, is far too slow for these sizes). Timed twice per method, best
kept; every output is compared. The batch is Table 2.3's, 128 (`--batch` sets
another). The DFNT is timed twice: all in (weights transformed too) and with the
weights' spectra ready, as at inference where they are transformed once.

The last line printed is one JSON object of the figures.
"""

import argparse
import json
import platform
import sys
import time

import torch

from bitfab.hls_gen.golden.dfnt import DFNTConv

# (k, n + k - 1, f, f') from Table 2.3
CONFIGS = [(11, 32, 3, 96), (7, 32, 96, 256), (5, 16, 256, 384), (5, 16, 384, 384),
           (3, 16, 384, 384)]
BATCH = 128
SEED = 20261123


def best_of(fn, runs=2):
    best, result = None, None
    for _ in range(runs):
        start = time.perf_counter()
        result = fn()
        elapsed = time.perf_counter() - start
        best = elapsed if best is None else min(best, elapsed)
    return best, result


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as info:
            return next((line.split(":", 1)[1].strip() for line in info
                         if line.startswith("model name")), platform.processor())
    except OSError:
        return platform.processor()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=BATCH)
    batch = parser.parse_args().batch
    torch.set_num_threads(1)
    generator = torch.Generator().manual_seed(SEED)
    rows, totals = [], {"direct_int64": 0.0, "direct_float64": 0.0, "dfnt": 0.0,
                        "dfnt_weights_ready": 0.0}
    for k, length, f, f_out in CONFIGS:
        n = length - k + 1
        x = torch.randint(-128, 128, (batch, f, n, n), generator=generator)
        w = torch.randint(-128, 128, (f_out, f, k, k), generator=generator)
        pad = (k - 1) // 2
        layer = DFNTConv(channels=f, kernel=k, b=32, x_bits=8, w_bits=8, length=length,
                         padding=pad)
        t_int, want = best_of(lambda: torch.nn.functional.conv2d(x, w, padding=pad))
        xf, wf = x.double(), w.double()
        t_float, got_float = best_of(lambda: torch.nn.functional.conv2d(xf, wf, padding=pad))
        t_dfnt, got = best_of(lambda: layer(x, w), runs=1)
        spectra = layer.spectra(w, length)
        t_ready, full = best_of(lambda: layer.correlate(x, spectra))
        ready = full[:, :, k - 1 - pad:n + pad, k - 1 - pad:n + pad]
        mismatches = int(((got != want) | (ready != want)).sum())   # either DFNT run
        assert torch.equal(got_float.long(), want)
        row = {"k": k, "transform": length, "f": f, "f_out": f_out, "batch": batch,
               "outputs": want.numel(), "mismatches": mismatches,
               "direct_int64_s": round(t_int, 3), "direct_float64_s": round(t_float, 3),
               "dfnt_s": round(t_dfnt, 3), "dfnt_weights_ready_s": round(t_ready, 3),
               "speedup_vs_int64": round(t_int / t_dfnt, 2),
               "speedup_weights_ready_vs_int64": round(t_int / t_ready, 2),
               "speedup_vs_float64": round(t_float / t_dfnt, 2)}
        rows.append(row)
        for key in totals:
            totals[key] += row[f"{key}_s"]
        print(f"k={k:2d} L={length} f={f:3d} f'={f_out:3d}: direct int64 {t_int:7.3f} s, "
              f"float64 {t_float:7.3f} s, DFNT {t_dfnt:7.3f} s "
              f"({t_ready:7.3f} s with weight spectra ready), {mismatches} mismatches",
              file=sys.stderr)
    summary = {
        "benchmark": "dfnt_sw", "threads": 1, "modulus": "2^32+1",
        # torch's integer conv2d is vectorised only where the CPU allows: figures from
        # two hosts compare only where torch and cpu_capability are equal.
        "torch": torch.__version__, "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu": _cpu_model(), "configs": rows,
        "mismatches": sum(r["mismatches"] for r in rows),
        "outputs": sum(r["outputs"] for r in rows),
        "total_s": {key: round(value, 3) for key, value in totals.items()},
        "speedup_vs_int64": round(totals["direct_int64"] / totals["dfnt"], 2),
        "speedup_vs_float64": round(totals["direct_float64"] / totals["dfnt"], 2),
        "speedup_weights_ready_vs_int64": round(totals["direct_int64"] / totals["dfnt_weights_ready"], 2),
        "speedup_weights_ready_vs_float64": round(totals["direct_float64"] / totals["dfnt_weights_ready"], 2),
        # Table 2.3, INT8, one thread: direct 438.35 s, DFNT 237.47 s in all.
        "thesis_speedup": 1.85,
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
