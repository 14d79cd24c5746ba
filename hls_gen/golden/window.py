"""The sliding window of a streaming convolution: which input elements each output
position sees, in the order the hardware streams them.

A convolution layer in hardware is a matrix-vector unit fed with windows: for
each output position (row-major), for each kernel row ``ky`` and column ``kx``,
the input pixel's C channels, or the padding code where the window hangs over
the image's edge. `sliding_windows` is that order as a tensor; the RTL's
`bitfab.rtl.window.SlidingWindow` streams exactly these elements.
"""

import torch

from bitfab.hls_gen.errors import BitfabError

__all__ = ["WINDOW_KERNELS", "WINDOW_STRIDES", "check_window", "window_output_size",
           "sliding_windows", "max_pool_codes"]

WINDOW_KERNELS = range(1, 8)       # k x k kernels, k = 1..7
WINDOW_STRIDES = (1, 2)


def check_window(height, width, kernel, stride, padding, where="window"):
    """Refuse a window the hardware does not generate, naming the parameter and the
    limit; the same checks as `bitfab.rtl.window.WindowConfig`."""
    if not isinstance(kernel, int) or kernel not in WINDOW_KERNELS:
        raise BitfabError(f"{where}: kernel must be 1 to 7, not {kernel!r}")
    if stride not in WINDOW_STRIDES:
        raise BitfabError(f"{where}: stride must be 1 or 2, not {stride!r}")
    if not isinstance(padding, int) or not 0 <= padding < kernel:
        raise BitfabError(f"{where}: padding must be 0 to kernel - 1 = {kernel - 1}, "
                          f"not {padding!r}")
    for name, size in (("height", height), ("width", width)):
        if not isinstance(size, int) or size < 1:
            raise BitfabError(f"{where}: {name} must be a positive integer, not {size!r}")
        if size + 2 * padding < kernel:
            raise BitfabError(f"{where}: {name} {size} padded by {padding} is smaller than "
                              f"the {kernel}x{kernel} kernel")


def window_output_size(size, kernel, stride, padding):
    """Output positions along one axis."""
    return (size + 2 * padding - kernel) // stride + 1


def sliding_windows(x, kernel, stride=1, padding=0, pad=0):
    """Every window of `x` (N, H, W, C integer codes): (N, H', W', k, k, C), the
    padding positions holding `pad` (the code of the value 0 in the layer's input
    encoding). Row-major output positions, then ky, kx, then channels: the order
    the hardware streams them."""
    if x.dim() != 4:
        raise BitfabError(f"window: want inputs (N, H, W, C), not {tuple(x.shape)}")
    n, height, width, channels = x.shape
    check_window(height, width, kernel, stride, padding)
    padded = torch.full((n, height + 2 * padding, width + 2 * padding, channels), pad,
                        dtype=torch.int64)
    padded[:, padding:padding + height, padding:padding + width] = x.long()
    rows = window_output_size(height, kernel, stride, padding)
    cols = window_output_size(width, kernel, stride, padding)
    out = torch.empty(n, rows, cols, kernel, kernel, channels, dtype=torch.int64)
    for ky in range(kernel):
        for kx in range(kernel):
            out[:, :, :, ky, kx] = padded[:, ky:ky + stride * (rows - 1) + 1:stride,
                                          kx:kx + stride * (cols - 1) + 1:stride]
    return out


def max_pool_codes(x, kernel, stride=None, padding=0):
    """Max pooling on activation codes (N, H, W, C): the largest code in each window.

    It sits after a layer's activation, on the codes its thresholds give: a code is a
    non-decreasing function of the activation's value (its thresholds encode the
    batch norm's sign, `Thresholds.descending`), so the largest code is the code of
    the largest value, and pooling codes is pooling values. The padding holds code
    0, the smallest, which a window's max never takes over a real pixel (PyTorch's
    -inf padding; padding at most kernel // 2, as PyTorch allows). Elements that
    are one-hot planes, bit planes or sign bits compare the same way as integers.
    """
    stride = kernel if stride is None else stride
    if not isinstance(padding, int) or padding > kernel // 2:
        raise BitfabError(f"max pool: padding must be at most kernel // 2 = {kernel // 2}, "
                          f"not {padding!r}")
    windows = sliding_windows(x, kernel, stride, padding, pad=0)
    return windows.flatten(3, 4).max(dim=3).values
