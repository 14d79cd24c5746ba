"""Errors raised by the compiler. Each names the layer, the parameter and the limit."""


class BitfabError(Exception):
    """Base class of every error bitfab raises on bad input."""


class UnsupportedLayerError(BitfabError):
    """A module the front end cannot map to hardware."""


class WidthOverflowError(BitfabError):
    """An integer whose worst case does not fit the width chosen for it."""


class FreezeError(BitfabError):
    """A trained model that cannot be turned into an exact integer model."""


class PlanError(BitfabError):
    """A folding or plan that the hardware cannot take."""
