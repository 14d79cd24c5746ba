"""The golden model, bitfab's specification: bit-exact integer PyTorch.

`freeze` turns a trained model into an integer `ir.Graph` whose layers call the
`kernels` (popcounts, merged coefficients, thresholds) in the `fixedpoint`
widths; `intconv` is an integer convolution layer's; `dim1` and `dfnt` are the
diminished-1 arithmetic and the Fermat number transform convolution. Nothing
here imports Amaranth or cocotb.
"""
