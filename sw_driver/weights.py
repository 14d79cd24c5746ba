"""The weight-load stream: what the host writes before the first image.

The words come from the build (``weights.json``: `MVAUConfig.pack`, or a convolution
engine's `load_words`, 33-bit codes for the b = 32 DFNT engine); this
module checks them against the plan before anything is sent, so a stream of
the wrong length or with out-of-range words never reaches the board.
"""

__all__ = ["check_load_words"]


def check_load_words(words, layers):
    """Raise `ValueError` unless `words` is exactly the load stream `layers` expect."""
    word_bits = layers[0].word_bits
    expected = sum(c.load_words for c in layers)
    if len(words) != expected:
        detail = ", ".join(f"layer {k}: {c.load_words}" for k, c in enumerate(layers))
        raise ValueError(f"weight stream has {len(words)} words, the plan loads {expected} "
                         f"({detail}) of {word_bits} bits")
    for index, word in enumerate(words):
        if not isinstance(word, int) or not 0 <= word < 1 << word_bits:
            raise ValueError(f"weight stream word {index} is {word!r}, not a {word_bits}-bit "
                             f"unsigned integer")
    return words
