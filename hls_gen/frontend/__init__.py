"""The PyTorch front end: quantizers (`quant`) and the trainable PA, XNOR and integer
layers (`layers`) a user builds a network from."""


def registrar(table):
    """``register = registrar(table)``; then ``@register(key, ...)`` maps each key to the
    function it decorates: the front ends' registries of handlers (the freezer's by
    module type, `exported`'s rebuilders by layer class, `onnx_import`'s by op type)."""
    def register(*keys):
        def add(fn):
            for key in keys:
                table[key] = fn
            return fn
        return add
    return register
