"""The one training loop of skysort: a Lightning module around any network and loss.

Every task (blend, sgq, pointsource, the paper-faithful heads) trains through
:class:`TaskModule` and :func:`fit`: Lightning provides the loops, early stopping,
checkpoints, mixed precision on GPU and multi-GPU; a task supplies only its network (an
``nn.Module`` taking the batch dict and returning a dict of outputs) and its loss function.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import os
import signal
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint
from torch import nn

from .._io import registered_temporary
from ..errors import InputError
from .data import InMemoryBatches

LossFunction = Callable[[Mapping[str, torch.Tensor], Mapping[str, torch.Tensor]], tuple[torch.Tensor, dict[str, torch.Tensor]]]


@dataclasses.dataclass
class OptimConfig:
    """Optimiser and schedule (defaults: Adam as in the BlendHunter and KiDS papers).

    Attributes
    ----------
    lr, betas, eps, weight_decay
        Adam(W) parameters.
    lr_factor, lr_patience
        Learning rate multiplied by ``lr_factor`` after ``lr_patience`` epochs without a
        validation-loss improvement.
    """

    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.0
    lr_factor: float = 0.5
    lr_patience: int = 5


class TaskModule(L.LightningModule):
    """Lightning wrapper: ``network(batch) -> outputs``, ``loss_fn(outputs, batch) -> (loss, logs)``."""

    def __init__(self, network: nn.Module, loss_fn: LossFunction, optim: OptimConfig | None = None):
        super().__init__()
        self.network = network
        self.loss_fn = loss_fn
        self.optim = optim or OptimConfig()

    def forward(self, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return self.network(batch)

    def _step(self, batch, stage: str) -> torch.Tensor:
        outputs = self.network(batch)
        loss, logs = self.loss_fn(outputs, batch)
        size = next(iter(batch.values())).shape[0]
        self.log(f"{stage}_loss", loss, prog_bar=True, batch_size=size, on_epoch=True, on_step=False)
        for name, value in logs.items():
            self.log(f"{stage}_{name}", value, batch_size=size, on_epoch=True, on_step=False)
        return loss

    def training_step(self, batch, batch_idx):
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx):
        self._step(batch, "val")

    def configure_optimizers(self):
        params = [p for p in self.network.parameters() if p.requires_grad]
        # On a GPU, one fused kernel updates all weights instead of several per tensor.
        fused = True if params and all(p.is_cuda for p in params) else None
        optimizer = torch.optim.AdamW(params, lr=self.optim.lr, betas=self.optim.betas, eps=self.optim.eps,
                                      weight_decay=self.optim.weight_decay, fused=fused)
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=self.optim.lr_factor,
                                                               patience=self.optim.lr_patience)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "monitor": "val_loss"}}


class _History(Callback):
    """Per-epoch metrics and wall time, kept for the model card (and printed when ``verbose``)."""

    def __init__(self, verbose: bool = False):
        self.epochs: list[dict[str, float]] = []
        self.verbose = verbose
        self._start = time.perf_counter()

    def on_validation_epoch_end(self, trainer, module):
        if trainer.sanity_checking:
            return
        row = {"epoch": int(trainer.current_epoch), "seconds": round(time.perf_counter() - self._start, 2)}
        for key, value in trainer.callback_metrics.items():
            if torch.is_tensor(value) and value.numel() == 1:
                row[key] = round(float(value), 6)
        row["lr"] = float(trainer.optimizers[0].param_groups[0]["lr"])
        self.epochs.append(row)
        if self.verbose:
            # One line per epoch survives in logs, where a redrawn progress bar does not.
            shown = "  ".join(f"{k} {v:.4g}" for k, v in row.items() if k not in ("epoch", "seconds"))
            print(f"epoch {row['epoch']:3d}  {row['seconds']:8.1f} s  {shown}", file=sys.stderr, flush=True)


def default_accelerator() -> tuple[str, str]:
    """``(accelerator, precision)``: bf16 mixed precision on a GPU, fp32 on CPU."""
    if torch.cuda.is_available():
        return "gpu", "bf16-mixed"
    return "cpu", "32-true"


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (and data-loader workers) from ``seed``.

    Call it before a network is built: torch seeds its default generator differently in every
    process, so weights initialised before seeding make a training irreproducible.
    """
    L.seed_everything(seed, workers=True, verbose=False)


def fit(
    module: TaskModule,
    train_loader,
    val_loader,
    *,
    max_epochs: int = 50,
    patience: int = 10,
    work_dir: str | os.PathLike | None = None,
    accelerator: str | None = None,
    precision: str | None = None,
    devices: int | str = "auto",
    progress: bool = True,
    seed: int = 0,
) -> dict[str, Any]:
    """Train ``module`` with early stopping on the validation loss; restore the best weights.

    Parameters
    ----------
    module : TaskModule
        Network, loss and optimiser.
    train_loader, val_loader : DataLoader
        Batches of dicts of tensors.
    max_epochs, patience : int
        Epoch limit; stop after ``patience`` epochs without validation-loss improvement.
    work_dir : path-like, optional
        Where checkpoints go (a temporary folder by default).
    accelerator, precision : str, optional
        Lightning settings; default :func:`default_accelerator`.
    devices : int or "auto"
        GPUs to use (Lightning's DDP when more than one).

    Returns
    -------
    dict
        ``history`` (per-epoch metrics and time), ``best_val_loss``, ``epochs``, ``seconds``,
        ``accelerator``, ``precision``.
    """
    seed_everything(seed)
    auto_accelerator, auto_precision = default_accelerator()
    accelerator = accelerator or auto_accelerator
    precision = precision or (auto_precision if accelerator == auto_accelerator else "32-true")
    history = _History(verbose=progress)
    with tempfile.TemporaryDirectory() as scratch, registered_temporary(scratch):
        root = Path(work_dir) if work_dir else Path(scratch)
        checkpoint = ModelCheckpoint(dirpath=root / "checkpoints", monitor="val_loss", mode="min", save_top_k=1,
                                     filename="best-{epoch}", save_weights_only=True)
        with _quiet_lightning():
            trainer = L.Trainer(
                max_epochs=max_epochs, accelerator=accelerator, devices=devices if accelerator != "cpu" else 1,
                precision=precision, callbacks=[EarlyStopping(monitor="val_loss", mode="min", patience=patience), checkpoint, history],
                logger=False, enable_progress_bar=progress, enable_model_summary=False, default_root_dir=root,
                deterministic=False, num_sanity_val_steps=0,
            )
        start = time.perf_counter()
        with warnings.catch_warnings(), _quiet_lightning():
            # Frozen parts of a network (e.g. a fixed image branch) stay in eval mode on purpose.
            warnings.filterwarnings("ignore", message=r"Found \d+ module\(s\) in eval mode")
            sigint = signal.getsignal(signal.SIGINT)
            try:
                with _batches_on_gpu((train_loader, val_loader), accelerator, devices):
                    trainer.fit(module, train_loader, val_loader)
            except SystemExit:
                # Lightning answers Ctrl-C by tearing down and calling sys.exit(1), after
                # setting SIGINT to be ignored: give the caller the interruption it was.
                if trainer.interrupted:
                    raise KeyboardInterrupt from None
                raise
            finally:
                if threading.current_thread() is threading.main_thread():
                    signal.signal(signal.SIGINT, sigint)
        seconds = time.perf_counter() - start
        best = checkpoint.best_model_path
        if best:
            state = torch.load(best, map_location="cpu", weights_only=True)["state_dict"]
            module.load_state_dict(state)
    require_finite_weights(module)
    best_loss = checkpoint.best_model_score
    return {
        "history": history.epochs,
        "best_val_loss": float(best_loss) if best_loss is not None else math.nan,
        "epochs": len(history.epochs),
        "seconds": round(seconds, 2),
        "accelerator": accelerator,
        "precision": precision,
    }


@contextlib.contextmanager
def _batches_on_gpu(loaders, accelerator: str, devices: int | str) -> Iterator[None]:
    """Hold in-memory training and validation sets in the GPU's memory during a fit on one GPU,
    when together they take at most half of its free memory.

    Cutting batches from host memory and copying them over took about half of each step's
    time training sgq-kids on an H100; the GPU itself was busy for a small part of it.
    """
    with contextlib.ExitStack() as stack:
        one_gpu = devices in (1, "1") or (devices == "auto" and torch.cuda.device_count() == 1)
        if accelerator in ("gpu", "cuda") and torch.cuda.is_available() and one_gpu:
            datasets = [loader.dataset for loader in loaders if isinstance(getattr(loader, "dataset", None), InMemoryBatches)]
            free, _ = torch.cuda.mem_get_info()
            if datasets and sum(dataset.nbytes for dataset in datasets) <= free // 2:
                device = torch.device("cuda", torch.cuda.current_device())
                for dataset in datasets:
                    stack.enter_context(dataset.resident_on(device))
        yield


def require_finite_weights(module: TaskModule) -> None:
    """Refuse a training that diverged: a network with a NaN or infinite weight (or batch-norm
    statistic) answers NaN for every object, and written to a model file it would look like
    any other model.

    Raises
    ------
    skysort.errors.InputError
        Naming ``--lr`` (the usual cause) and how many values are not finite.
    """
    tensors = [*module.network.parameters(), *module.network.buffers()]
    bad = sum(int((~torch.isfinite(t)).sum()) for t in tensors if t.is_floating_point())
    if bad:
        raise InputError("--lr", f"training diverged: {bad:,} weights of the network are NaN or infinite after training "
                                 f"at learning rate {module.optim.lr:g}; train again with a lower --lr")


@contextlib.contextmanager
def _quiet_lightning():
    """Lightning's informational lines (hardware summary, advertising tips) and its own
    deprecation notices about the torch it runs on are held back: the epoch table and the
    returned record say which accelerator and precision were used."""
    loggers = [logging.getLogger(name) for name in ("lightning.pytorch", "lightning.fabric")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")
            yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def history_json(result: Mapping[str, Any]) -> str:
    """The training record as indented JSON (for model cards and logs)."""
    return json.dumps(result, indent=1, default=float)
