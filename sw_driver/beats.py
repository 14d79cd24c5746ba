"""Items <-> the beats a generated network's streams carry (`MVAUConfig.in_layout`,
`out_layout`): how the host packs images and unpacks scores, and how the
benches build their expected beats.
"""

__all__ = ["element_values", "input_beats", "output_beats", "scores_from_beats"]


def element_values(codes, encoding):
    """Activation codes -> the planes each element carries, as an integer."""
    if encoding == "onehot":
        return [[1 << (c - 1) if c else 0 for c in row] for row in codes]
    return [list(row) for row in codes]     # bit planes of a pixel, or a sign bit


def input_beats(config, codes, encoding):
    """(items, elements) input codes -> input beats of `config.in_beat` elements: a
    fully connected layer's `cols` per item, or a convolution's image, pixel by pixel
    (`MVAUConfig.image_elements`)."""
    layout, beat = config.in_layout, config.in_beat
    return [layout.const(row[b:b + beat]).as_bits()
            for row in element_values(codes.tolist(), encoding)
            for b in range(0, config.image_elements, beat)]


def output_beats(config, values):
    """(items, rows) golden codes or scores -> the unit's output beats."""
    rows = values.tolist()
    if config.output == "codes":
        rows = element_values(rows, "onehot")
    layout = config.out_layout
    return [layout.const(row[g * config.pe:(g + 1) * config.pe]).as_bits()
            for row in rows for g in range(config.groups)]


def scores_from_beats(config, beats):
    """A scores unit's output beats -> one list of `config.rows` scores per item."""
    if config.output != "scores":
        raise ValueError(f"the last layer outputs {config.output}, not scores")
    if len(beats) % config.groups:
        raise ValueError(f"{len(beats)} output beats are not whole items of "
                         f"{config.groups} beats")
    values = [value for beat in beats for value in config.out_layout.from_bits(beat)]
    return [values[k:k + config.rows] for k in range(0, len(values), config.rows)]
