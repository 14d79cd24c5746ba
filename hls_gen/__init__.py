"""The bitfab compiler: PyTorch front end, golden model, IR, passes, backends, CLI.

- `quant`, `layers`: trainable PA (piecewise approximation) and XNOR layers;
- `freeze`: trained model -> integer golden model (`ir`, `golden`);
- `data`, `models`, `train`, `demo`: the digits job behind ``bitfab demo``.
"""
