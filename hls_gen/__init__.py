"""The bitfab compiler: from a PyTorch model to a verified design and a bitstream.

- `frontend`: trainable PA (piecewise approximation), XNOR and integer layers;
- `golden`: the integer golden model (IR, kernels, fixed point, the freezer,
  diminished-1 and DFNT arithmetic), the specification the hardware is checked
  against;
- `compiler`: boards, mapping, folding, estimates, the build flow and its steps,
  synthesis, reports, deployment;
- `digits`: the digits job behind ``bitfab demo`` (reference models, training);
- `datasets`: the real inputs (scikit-learn's digits and sample photos);
- `cli`: the ``bitfab`` command.
"""
