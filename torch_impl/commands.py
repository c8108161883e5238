"""The commands of `gan-torch`: train, sample and export (mirror: keras_impl/commands.py).

torch_impl/train.py parses the words (specs/cli.py) and calls these; `eval` is specs/evaluate.py's, given this
backend's checkpoint module. What is PyTorch's own here: the per-epoch outputs of a run as a callback of the
explicit loop (torch_impl/loop.py), and TensorBoard through torch.utils.tensorboard, kept off TensorFlow.
The files themselves are torch_impl/checkpoint.py's.
"""

from __future__ import annotations

import logging
import sys
import types
from pathlib import Path

from specs.datasets import DatasetSpec, to_uint8
from specs.images import save_grid
from specs.models import conditioned_on
from specs.runs import (
    Interrupted,
    Run,
    RunError,
    SampleInputs,
    all_finite,
    building,
    check_picture_out,
    check_resumable,
    checkpoint_meta,
    data_record,
    report_data,
    sample_inputs,
    sample_request,
)
from torch_impl import checkpoint
from torch_impl.data import batches
from torch_impl.devices import describe_device, select_device
from torch_impl.distributed import is_chief, on_chief, setup, synchronize
from torch_impl.loop import Callback
from torch_impl.trainers import build_trainer

BACKEND = "torch"
log = logging.getLogger(__name__)

# ------------------------------------------------------------------------------------------------- Run outputs


def _summary_writer(folder: Path):
    """torch's SummaryWriter on TensorBoard's own file code. Where TensorFlow is installed too, TensorBoard's
    compatibility layer imports it (torch.utils.tensorboard reads `tf.io.gfile` as it is imported), which costs
    seconds and prints TensorFlow's start-up lines; `tensorboard.compat.notf`, TensorBoard's switch to its stub,
    keeps it off (unless this process has loaded TensorFlow already, for its own reasons)."""
    if "tensorflow" not in sys.modules:
        sys.modules.setdefault("tensorboard.compat.notf", types.ModuleType("tensorboard.compat.notf"))
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(str(folder))


class RunOutputs(Callback):
    """After every epoch: a sample grid from fixed noise, a row of losses.csv, TensorBoard scalars, the checkpoint
    and the network files. After every batch: stop at a NaN or infinite loss, keeping the last good checkpoint."""

    def __init__(self, run: Run, model: str, inputs: SampleInputs, steps_per_epoch: int, data: dict,
                 first_epoch: int = 0, precision: str = "float32"):
        self.run, self.model_name, self.inputs, self.data = run, model, inputs, data
        self.precision = precision
        self.steps_per_epoch = steps_per_epoch
        self.diverged: str | None = None
        self.epoch, self.batches, self.saved = first_epoch, 0, first_epoch  # where training is; epochs saved
        self.writer = _summary_writer(run.tensorboard) if is_chief() else None

    def on_train_batch_end(self, batch, logs=None):
        self.batches = batch + 1
        if not all_finite(logs):
            values = ", ".join(f"{k}={float(v):.4g}" for k, v in logs.items())
            self.diverged = f"a loss is not finite at batch {batch + 1}: {values}"
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        if self.diverged is None and not checkpoint.state_finite(self.model):  # a last update can break weights
            self.diverged = f"a weight or optimiser moment is not finite after epoch {epoch + 1}"
            self.model.stop_training = True
        if self.diverged is not None or not is_chief():  # the chief alone writes the run folder
            return
        step = (epoch + 1) * self.steps_per_epoch
        with self.run.saving():  # a failed write (disk full) ends the run with the last checkpoint intact
            self.run.save_samples(epoch, checkpoint.generate(self.model, self.inputs), self.inputs.rows)
            self.run.log_epoch(epoch, step, logs)
            for name, value in logs.items():
                self.writer.add_scalar(f"epoch_{name}", value, epoch)
            meta = checkpoint_meta(BACKEND, self.model_name, self.model.config, epoch, step, self.data,
                                   self.precision)
            checkpoint.save_run(self.model, self.run, meta)
        self.epoch, self.batches, self.saved = epoch + 1, 0, epoch + 1
        log.debug("epoch %d: samples, losses, %s and the network files written", epoch + 1, self.run.checkpoint)

    def interrupted(self) -> Interrupted:
        """What Ctrl-C stopped: the epoch and step it reached and the epoch of the last checkpoint (the files of an
        epoch are written whole: Run.saving defers Ctrl-C)."""
        if self.saved == 0 and is_chief():
            self.run.discard_unfinished()
        return Interrupted(self.epoch + 1, self.epoch * self.steps_per_epoch + self.batches, self.saved)

    def on_train_end(self, logs=None):
        if self.writer is not None:
            self.writer.close()
            self.writer = None


# ---------------------------------------------------------------------------------------------------- Commands


def train(model: str, config, spec: DatasetSpec, out: Path, seed: int, resume: bool, progress: bool,
          keep: int = 1, device: str = "auto", precision: str = "float32") -> int:
    device = select_device(device)  # under torchrun: the GPU of this process's LOCAL_RANK
    setup(device)  # one process, or one of the processes that torchrun started
    run = Run(out, checkpoint.CHECKPOINT, keep)
    on_chief(run.prepare, resume)
    data = spec.load()
    config = conditioned_on(config, data.num_classes)
    data_info = data_record(spec, data)
    steps_per_epoch = len(spec.batch_order(0, len(data.labels), config.batch_size))
    with building(config):  # a configuration too big for this machine: one line
        trainer = build_trainer(model, config, seed, device, precision)
    synchronize(trainer)
    first_epoch = 0
    if resume:
        state = on_chief(checkpoint.load_checkpoint, run.checkpoint)
        check_resumable(state["meta"], BACKEND, model, config, data_info)
        checkpoint.restore(trainer, state)
        first_epoch = state["meta"]["epoch"] + 1
    on_chief(report_data, spec, data)  # what it trains on, once the data is known to suit the run
    if not run.epochs_left(first_epoch, config.epochs):
        return 0
    on_chief(run.check_space, config, checkpoint.parameter_bytes(trainer), config.epochs - first_epoch)
    outputs = RunOutputs(run, model, sample_inputs(config, seed), steps_per_epoch, data_info, first_epoch, precision)
    if is_chief():
        log.info("training on %s in %s", describe_device(device), precision)
    try:
        trainer.fit(lambda epoch: batches(data, spec, config.batch_size, epoch, config.conditional, device),
                    epochs=config.epochs, initial_epoch=first_epoch, callbacks=[outputs],
                    verbose=int(progress and is_chief()), steps_per_epoch=steps_per_epoch)
    except KeyboardInterrupt:
        outputs.on_train_end()  # the TensorBoard writer, closed
        raise outputs.interrupted() from None
    if outputs.diverged is not None:
        if is_chief():  # the others stop alike, with nothing of their own to report
            log.error("%s", run.diverged_message(outputs.diverged))
            run.discard_unfinished()
        return 1
    if is_chief():
        log.info("trained to epoch %d; samples, losses.csv, %s and the networks' state_dicts in %s", config.epochs,
                 checkpoint.CHECKPOINT, out)
    return 0


def sample(model: str, checkpoint_path: Path, out: Path, num: int, seed: int, label: str | None = None,
           device: str = "auto") -> int:
    check_picture_out(out)
    trainer, meta, path = checkpoint.load_trained(model, checkpoint_path, device)
    inputs = sample_request(meta, trainer.config, num, seed, label)
    try:
        save_grid(to_uint8(checkpoint.generate(trainer, inputs)), out, inputs.rows)
    except OSError as error:
        raise RunError(f"cannot write {out}: {error.strerror or error}; choose another --out") from None
    log.info("%d samples from %s written to %s", len(inputs.z), path, out)
    return 0


def export(model: str, checkpoint_path: Path, out: Path, format: str) -> int:
    trainer, _, path = checkpoint.load_trained(model, checkpoint_path)
    try:
        checkpoint.export_generator(trainer, out, format)
    except OSError as error:
        raise RunError(f"cannot write {out}: {error.strerror or error}; choose another --out") from None
    inputs = "z, one-hot labels" if trainer.config.conditional else "z"
    loader = "torch.export.load(path).module()" if format == "torch" else "an ONNX runtime"
    log.info("the generator of %s written to %s (%s): run it with %s on (%s)", path, out, format, loader, inputs)
    return 0
