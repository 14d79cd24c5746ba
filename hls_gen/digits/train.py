"""Training and evaluation on the CPU."""

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from bitfab.hls_gen.frontend.quant import PAActivation

__all__ = ["TrainConfig", "train", "accuracy", "predict", "init_from"]


@dataclass(frozen=True)
class TrainConfig:
    """Adam with a cosine learning-rate decay; one fixed seed for the whole run."""

    epochs: int = 60
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 0.0
    seed: int = 0


def _shaped(model_input_shape, x):
    return x.view(x.shape[0], *model_input_shape)


#: Threads a training runs on, fixed so that the trained weights do not depend on where
#: it runs. One: two Dask workers on 2 cores, each training on two threads, took 62 s
#: for the float CNN that one thread trains in 7 (the threads wait for each other's core).
TRAIN_THREADS = 1


def train(model, x, y, input_shape, config=TrainConfig(), on_epoch=None, after_step=None):
    """Train `model` in place on integer pixels `x` (N, 64) and labels `y`; returns it.
    `on_epoch(epoch, epochs, loss)`, when given, hears of each epoch's end (its mean
    loss); `after_step()` runs after each optimiser step (FINN's trainer clips its
    weights there). Runs on `TRAIN_THREADS` threads whatever the machine: a float
    sum's order, and so the trained weights, depend on the count (Dask's workers
    default to one)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(TRAIN_THREADS)
    try:
        return _train(model, x, y, input_shape, config, on_epoch, after_step)
    finally:
        torch.set_num_threads(threads)


def _train(model, x, y, input_shape, config, on_epoch, after_step):
    generator = torch.Generator().manual_seed(config.seed)
    torch.manual_seed(config.seed)
    optimiser = torch.optim.Adam(model.parameters(), lr=config.lr,
                                 weight_decay=config.weight_decay)
    steps = config.epochs * -(-len(x) // config.batch_size)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, steps)
    activations = [m for m in model.modules() if isinstance(m, PAActivation)]
    x = _shaped(input_shape, x)
    model.train()
    for epoch in range(config.epochs):
        order = torch.randperm(len(x), generator=generator)
        losses = []
        for start in range(0, len(x), config.batch_size):
            batch = order[start:start + config.batch_size]
            if len(batch) < 2:      # batch norm needs two samples
                continue
            loss = F.cross_entropy(model(x[batch]), y[batch])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
            for act in activations:
                act.constrain_()
            if after_step is not None:
                after_step()
            losses.append(float(loss.detach()))
        if on_epoch is not None:
            on_epoch(epoch + 1, config.epochs, sum(losses) / max(len(losses), 1))
    model.eval()
    return model


@torch.no_grad()
def predict(model, x, input_shape):
    """Class indices (first index of the maximum) of the model in eval mode."""
    model.eval()
    return model(_shaped(input_shape, x)).argmax(dim=1)


def accuracy(predictions, y):
    return float((predictions == y).double().mean())


def init_from(model, reference):
    """Copy every parameter and buffer of `reference` whose name and shape match
    (the thesis initialises PA training from a trained full-precision model)."""
    theirs = reference.state_dict()
    own = model.state_dict()
    matched = {k: v for k, v in theirs.items() if k in own and own[k].shape == v.shape}
    model.load_state_dict(matched, strict=False)
    return sorted(matched)
