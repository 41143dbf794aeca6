"""The reference implementations' own pretraining steps, run on the CPU from a checkout the user
points at (`bench_pretrain.py --reference-skelemix DIR --reference-isc DIR`). Nothing of them is
copied here: their modules are imported from DIR and their own training loop runs (model, loss,
backward, SGD step, their bookkeeping), fed random batches of the paper's shape.

Patched at run time, only what stops them on a CPU: `Tensor.cuda` returns the tensor itself (both
call `.cuda()` on tensors they create, ISC on its labels and graph, SkeleMixCLR on its masks);
SkeleMixCLR's enqueue offsets by `keys.device.index` (None on a CPU), so its enqueue runs with the
keys seen as on device 0; modules they import but a training step does not use (tensorboardX,
tqdm, torchvision, networkx, torch.utils.tensorboard) are stubbed when not installed. One patch
is for current PyTorch, not the CPU: ISC's top-k accuracy `.view`s a transposed tensor, which
PyTorch now refuses; it is replaced by the same metric.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.machinery
import itertools
import sys
import time
import types
from collections.abc import Callable, Iterator
from pathlib import Path

import torch

# the files a checkout must hold, by method: (repository, files)
CHECKOUTS = {
    "skelemix": ("SkeleMixCLR (github.com/czhaneva/SkeleMixCLR)",
                 ["net/skeletonclr_multi_swapv2.py", "net/st_gcn_swap.py",
                  "processor/pretrain_skeletonclr_multi_swapv2.py", "torchlight/torchlight/__init__.py",
                  "config/CrosSCLR/skelemixclr_multi_swap_ntu.yaml"]),
    "isc": ("skeleton-contrast (github.com/fmthoker/skeleton-contrast)",
            ["moco/builder_inter.py", "moco/AGCN.py", "moco/GRU.py", "main_moco_inter_skeleton.py",
             "options/options_pretraining.py"]),
}
SKELEMIX_CONFIG = "config/CrosSCLR/skelemixclr_multi_swap_ntu.yaml"
# ISC's pretraining command for NTU-60 cross-subject (its script_pretrain.sh)
ISC_ARGS = ["--lr", "0.01", "--batch-size", "64", "--mlp", "--moco-t", "0.07", "--moco-k", "16384",
            "--schedule", "351", "--epochs", "451", "--pre-dataset", "ntu60", "--protocol", "cross_subject",
            "--skeleton-representation", "seq-based_and_graph-based", "--gpu", "0"]


def checkout_error(method: str, directory: str) -> str | None:
    """One line when `directory` is not a checkout of `method`'s reference repository."""
    repo, files = CHECKOUTS[method]
    root = Path(directory)
    if not root.is_dir():
        return f"--reference-{method}: {directory} is not a directory (expected a checkout of {repo})"
    missing = [f for f in files if not (root / f).is_file()]
    if missing:
        return f"--reference-{method}: {directory} is not a checkout of {repo} (no {missing[0]})"
    return None


def _stub_missing(*names: str) -> None:
    """Modules a reference imports but its training step never uses: a placeholder each where
    the module is not installed (any attribute is a no-op callable)."""
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError:
            stub = types.ModuleType(name)
            stub.__spec__ = importlib.machinery.ModuleSpec(name, None)
            stub.__getattr__ = _placeholder
            sys.modules[name] = stub


def _placeholder(attr: str) -> Callable[..., types.SimpleNamespace]:
    if attr.startswith("__"):
        raise AttributeError(attr)
    return lambda *args, **kwargs: types.SimpleNamespace(add_scalar=lambda *a, **k: None)


def _on_cpu() -> None:
    torch.Tensor.cuda = lambda self, *args, **kwargs: self  # type: ignore[method-assign]


class TimedBatches:
    """A data loader of `steps` copies of one random batch; the process's CPU time and the wall
    time at each fetch, so the difference of two is one whole iteration of the reference's loop."""

    def __init__(self, batch: object, steps: int):
        self.batch, self.steps = batch, steps
        self.fetched_at: list[tuple[float, float]] = []

    def __len__(self) -> int:
        return self.steps

    def __iter__(self) -> Iterator[object]:
        for _ in range(self.steps):
            self.fetched_at.append((time.process_time(), time.perf_counter()))
            yield self.batch
        self.fetched_at.append((time.process_time(), time.perf_counter()))

    def step_seconds(self) -> dict[str, list[float]]:
        """{"cpu": CPU seconds of each step (all the process's threads), "wall": wall seconds}."""
        pairs = list(itertools.pairwise(self.fetched_at))
        return {"cpu": [b[0] - a[0] for a, b in pairs], "wall": [b[1] - a[1] for a, b in pairs]}


def skelemix_epoch(directory: str, batch: int, frames: int) -> tuple[Callable[[TimedBatches], None], Callable[[int], TimedBatches]]:
    """SkeleMixCLR+'s `SkeletonCLR_Processor.train` with its config's model, optimizer and loss."""
    import yaml

    root = Path(directory).resolve()
    sys.path[:0] = [str(root), str(root / "torchlight")]
    _stub_missing("tensorboardX", "tqdm")
    _on_cpu()
    from processor.pretrain_skeletonclr_multi_swapv2 import SkeletonCLR_Processor
    from torchlight import import_class

    parser = SkeletonCLR_Processor.get_parser()
    parser.set_defaults(**yaml.safe_load((root / SKELEMIX_CONFIG).read_text()))
    processor = SkeletonCLR_Processor.__new__(SkeletonCLR_Processor)  # no work dir, logs or loaders
    processor.arg = parser.parse_args([f"--batch_size={batch}"])
    quiet = types.SimpleNamespace(add_scalar=lambda *a, **k: None)
    processor.io = types.SimpleNamespace(load_model=lambda name, **kw: import_class(name)(**kw),
                                         print_log=lambda *a, **k: None)
    processor.train_writer = quiet
    processor.meta_info, processor.iter_info, processor.epoch_info = {"epoch": 0, "iter": 0}, {}, {}
    processor.global_step = 0
    processor.load_model()
    processor.load_optimizer()
    model = processor.model
    enqueue = type(model)._dequeue_and_enqueue

    def enqueue_on_cpu(keys: torch.Tensor, label: object) -> None:
        enqueue(model, keys.as_subclass(_OnDeviceZero), label)

    model._dequeue_and_enqueue = enqueue_on_cpu

    def epoch(loader: TimedBatches) -> None:
        processor.data_loader = {"train": loader}
        processor.train(0)

    shape = (batch, 3, frames, 25, 2)
    return epoch, lambda steps: TimedBatches([[[torch.randn(shape)], torch.randn(shape), None], None], steps)


class _OnDeviceZero(torch.Tensor):
    """Keys whose `device.index` reads 0: the queue offset of SkeleMixCLR's enqueue."""

    @property
    def device(self) -> types.SimpleNamespace:  # type: ignore[override]
        return types.SimpleNamespace(index=0, type="cpu")


def isc_epoch(directory: str, batch: int, frames: int) -> tuple[Callable[[TimedBatches], None], Callable[[int], TimedBatches]]:
    """ISC's `main_moco_inter_skeleton.train` with the model, loss and SGD its main builds from
    its NTU-60 pretraining command (sequence + graph)."""
    root = Path(directory).resolve()
    sys.path.insert(0, str(root))
    _stub_missing("torchvision", "networkx", "torch.utils.tensorboard")
    _on_cpu()
    import main_moco_inter_skeleton as isc
    import moco.builder_inter
    from options import options_pretraining

    isc.accuracy = _accuracy
    args = isc.parser.parse_args(ISC_ARGS)
    args.batch_size = batch
    args.print_freq = 10**9
    opts = options_pretraining.opts_ntu_60_cross_subject()
    model = moco.builder_inter.MoCo(args.skeleton_representation, opts.bi_gru_model_args, opts.agcn_model_args,
                                    opts.hcn_model_args, args.moco_dim, args.moco_k, args.moco_m, args.moco_t, args.mlp)
    criterion = torch.nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), args.lr, momentum=args.momentum, weight_decay=args.weight_decay)

    def epoch(loader: TimedBatches) -> None:
        isc.train(loader, model, criterion, optimizer, 0, args)

    sequence, graph = (batch, frames, 150), (batch, 3, frames, 25, 2)
    return epoch, lambda steps: TimedBatches(
        [torch.randn(sequence), torch.randn(graph), torch.randn(sequence), torch.randn(graph)], steps)


def _accuracy(output: torch.Tensor, target: torch.Tensor, topk: tuple[int, ...]) -> list[torch.Tensor]:
    """ISC's top-k accuracy (%) of the contrast classifier; its own `.view` of a transposed
    tensor fails on current PyTorch."""
    hits = output.topk(max(topk), dim=1).indices == target[:, None]
    return [hits[:, :k].any(dim=1).float().mean(0, keepdim=True) * 100 for k in topk]


BUILDERS = {"skelemix": skelemix_epoch, "isc": isc_epoch}


def run(method: str, directory: str, batch: int, frames: int, warm_up: int, steps: int) -> dict[str, list[float]]:
    """CPU and wall seconds of each of `steps` steps after `warm_up` steps (`TimedBatches.step_seconds`;
    the reference's prints go to stderr)."""
    with contextlib.redirect_stdout(sys.stderr):
        epoch, batches = BUILDERS[method](directory, batch, frames)
        loader = batches(warm_up + steps)
        epoch(loader)
    return {clock: seconds[warm_up:] for clock, seconds in loader.step_seconds().items()}
