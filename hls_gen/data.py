"""The digits data set: scikit-learn's bundled `load_digits`, with a fixed split.

1797 real 8x8 images of handwritten digits, pixels 0..16. The split is
stratified by class with `random_state=0` and holds out 25% (450 images) for
test; nothing is ever fitted on the test images.
"""

from dataclasses import dataclass

import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

__all__ = ["TEST_FRACTION", "SPLIT_SEED", "DigitsSplit", "load_digits_split"]

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
