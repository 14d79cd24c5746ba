"""The PyTorch front end: quantizers (`quant`) and the trainable PA, XNOR and integer
layers (`layers`) a user builds a network from."""
