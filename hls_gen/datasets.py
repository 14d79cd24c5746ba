"""Real inputs for training and simulation, all bundled with scikit-learn.

The digits: `load_digits`, with a fixed split.

1797 real 8x8 images of handwritten digits, pixels 0..16. The split is
stratified by class with `random_state=0` and holds out 25% (450 images) for
test; nothing is ever fitted on the test images. Photo crops: 32 x 32 pieces of
`load_sample_images`' two photos (`conv_images`), for layers of three channels.
"""

from dataclasses import dataclass

import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

__all__ = ["TEST_FRACTION", "SPLIT_SEED", "DigitsSplit", "load_digits_split", "photo_crops",
           "conv_images"]

TEST_FRACTION = 0.25
SPLIT_SEED = 0


@dataclass(frozen=True)
class DigitsSplit:
    """Integer pixels (N, 64) in 0..16 and labels (N,), as int64 tensors."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor

    pixel_bits = 5            # 0..16 needs 5 bit planes
    pixel_scale = 1 / 16      # the float models see pixel / 16 in 0..1
    image_shape = (1, 8, 8)
    classes = 10


def load_digits_split():
    """The fixed train/test split of the digits (1347 train, 450 test)."""
    digits = load_digits()
    x_train, x_test, y_train, y_test = train_test_split(
        digits.data.astype("int64"), digits.target.astype("int64"),
        test_size=TEST_FRACTION, random_state=SPLIT_SEED, stratify=digits.target)
    return DigitsSplit(*(torch.from_numpy(a) for a in (x_train, y_train, x_test, y_test)))


def photo_crops(count, height=32, width=32, first=0):
    """Crops `first` .. `first + count - 1` of scikit-learn's two bundled photos
    (``load_sample_images``: 427 x 640 RGB), as (count, 3, height, width) int64
    pixels 0..255: crop k comes from photo k % 2 at a position that moves with k
    (37 rows and 53 columns a step, wrapping), so crops differ."""
    from sklearn.datasets import load_sample_images
    photos = [torch.from_numpy(p.copy()).long().permute(2, 0, 1)
              for p in load_sample_images().images]
    crops = []
    for k in range(first, first + count):
        photo = photos[k % len(photos)]
        top = (37 * k) % (photo.shape[1] - height)
        left = (53 * k) % (photo.shape[2] - width)
        crops.append(photo[:, top:top + height, left:left + width])
    return torch.stack(crops)


def conv_images(layer, count, height, width):
    """Real images for simulation, as signed `x_bits` integers: the digits test split
    (pixels 0..16) for a one-channel layer; crops of scikit-learn's bundled photos
    (RGB, pixel - 128, rescaled to x_bits) for three channels and more (channels past
    the photo's three repeat them)."""
    if layer.in_channels == 1:
        digits = load_digits_split().x_test[:count].reshape(-1, 1, 8, 8)
        x = torch.zeros(len(digits), 1, height, width, dtype=torch.int64)
        h, w = min(8, height), min(8, width)
        x[:, :, :h, :w] = digits[:, :, :h, :w]
        limit = (1 << (layer.x_bits - 1)) - 1
        return x.clamp(max=limit)
    x = photo_crops(count, height, width)[:, torch.arange(layer.in_channels) % 3] - 128
    shift = 8 - layer.x_bits
    return x >> shift if shift > 0 else x
