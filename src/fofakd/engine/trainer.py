"""The training loop behind every task's runs (`fofakd train`, `fofakd distill`, `fofakd detect ...`)."""
from __future__ import annotations

import math
import signal
import sys
import threading
import time
from typing import Any

import torch
from timm.utils import ModelEmaV3, distribute_bn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from ..errors import FofakdError, RunInterrupted
from ..models.checkpoint import state_fingerprint
from .optim import build_optimizer, build_scheduler
from .checkpoint import load_checkpoint, rng_state, save_atomic, set_rng_state
from .config import TrainingConfig
from .distributed import DistInfo, all_reduce_sum, barrier, cleanup, init_distributed
from .evaluate import autocast_context
from .faults import fault_point
from .memory import peak_memory_mb, reset_peak_memory
from .run_dir import RunDir, save_student
from .trackers import open_tracker
from .tasks import TrainingTask


class Trainer:
    """One run: optimiser, schedule, EMA, checkpoints and logs around the task's data, distiller and metrics.

    Args:
        cfg: The run's options.
        command: "train" (one model, no teacher) or "distill".
        task: The task's `TrainingTask` class (data, models, validation, test metric, best-checkpoint key).
    """

    def __init__(self, cfg: TrainingConfig, command: str, task: type[TrainingTask]):
        if not cfg.out:
            raise FofakdError("the run needs an output directory: pass --out DIR.")
        self.cfg, self.command = cfg, command
        self.info: DistInfo = init_distributed(cfg.device)
        self.device = self.info.device
        if cfg.amp == "fp16" and self.device.type != "cuda":
            raise FofakdError("fp16 mixed precision needs a GPU; use --amp bf16 on the CPU.")
        if cfg.sync_bn and self.device.type != "cuda":
            raise FofakdError("--sync-bn needs GPUs; leave it off on the CPU.")
        self.run_dir = RunDir(cfg.out)
        self.run_dir.check(cfg.resume, cfg.overwrite)
        torch.manual_seed(cfg.seed + self.info.rank)
        if cfg.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
            torch.backends.cudnn.benchmark = False

        self.task = task(cfg, command, self.info, self.device)
        self.method, self.score_key = self.task.method, self.task.score_key
        self.distiller, self.spec = self.task.build()
        teacher = self.distiller.teacher
        # Checkpoints leave the frozen teacher out; they record where it came from and what it held instead.
        self.teacher_record = {"source": cfg.teacher_checkpoint or f"{cfg.teacher} (timm weights)",
                               "sha256": state_fingerprint(teacher)} if teacher is not None else None
        if cfg.channels_last:
            self.distiller.to(memory_format=torch.channels_last)
        if cfg.sync_bn and self.info.enabled:
            self.distiller.student = torch.nn.SyncBatchNorm.convert_sync_batchnorm(self.distiller.student)
        if cfg.compile:
            self.distiller.student.compile()
            if self.distiller.teacher is not None:
                self.distiller.teacher.compile()

        self.optimizer = build_optimizer(cfg, self.distiller)
        self.steps_per_epoch = len(self.task.train_loader)
        self.scheduler = build_scheduler(cfg, self.optimizer, self.steps_per_epoch)
        self.scaler = torch.amp.GradScaler("cuda") if cfg.amp == "fp16" else None
        self.ema = ModelEmaV3(self.distiller.student, decay=cfg.ema_decay) if cfg.ema else None
        self.model = self.distiller
        if self.info.enabled:
            # Buffers stay per process (FOFA feedback, CRD queues); BatchNorm statistics are averaged per epoch.
            self.model = DistributedDataParallel(
                self.distiller, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                broadcast_buffers=False, find_unused_parameters=self.distiller.ddp_find_unused_parameters,
            )
        self.epoch, self.step, self.best_score, self.history = 0, 0, -math.inf, []
        self.wall_time = 0.0
        # Within an epoch: batches done, and the running loss sums (saved when a signal stops the run mid-epoch).
        self.epoch_step, self.partial = 0, {"sums": {}, "samples": 0, "elapsed": 0.0}
        self.pending_rng: dict[str, Any] | None = None
        self.stop_signal = 0
        if cfg.resume:
            self._restore()
        # Only now, with data and models built and the checkpoint read (so a mistake cannot cost the old run), may
        # the folder be taken and an old run be replaced.
        if self.info.is_main:
            self.run_dir.acquire()  # released when fit() ends, however it ends
            if cfg.resume:  # --epochs may grow on resume: the run's config.yaml says what it now runs to
                self.run_dir.update_config({"epochs": cfg.epochs})
            else:
                self.run_dir.start_new()
        barrier(self.info)
        if cfg.resume:
            self._log(f"resuming {self.run_dir.path} at epoch {self.epoch + 1}, step {self.step}")
        else:
            self._log(f"run directory: {self.run_dir.path}")

    # ----------------------------------------------------------------------------------------------- state
    def _state(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch, "step": self.step, "best_score": self.best_score, "history": self.history,
            "wall_time": self.wall_time, "epoch_step": self.epoch_step, "partial": self.partial,
            "distiller": {k: v for k, v in self.distiller.state_dict().items() if not k.startswith("teacher.")},
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler else {},
            "scaler": self.scaler.state_dict() if self.scaler else {},
            "ema": self.ema.module.state_dict() if self.ema else {},
            "rng": rng_state(), "config": self.cfg.to_dict(), "student_spec": self.spec,
            "teacher": self.teacher_record,
        }

    def _process_file(self) -> Any:
        return self.run_dir.checkpoints / f"last.rank{self.info.rank}.pt"

    def save(self, best: bool) -> None:
        state = self._state()
        if self.info.rank > 0:  # per-process state: feedback buffers, queues, generators
            save_atomic({"rng": state["rng"], "distiller": state["distiller"]}, self._process_file())
            return
        save_atomic(state, self.run_dir.last)
        if best:
            save_atomic(state, self.run_dir.best)

    def _restore(self) -> None:
        state = load_checkpoint(self.run_dir.last)
        own = self._process_file()
        process_state = load_checkpoint(own) if self.info.rank > 0 and own.is_file() else state
        saved_teacher = state.get("teacher")
        if saved_teacher and self.teacher_record and saved_teacher["sha256"] != self.teacher_record["sha256"]:
            raise FofakdError(
                f"the teacher's weights ({self.teacher_record['source']}) differ from those this run started with "
                f"({saved_teacher['source']}); resume with the same teacher, or start a new run with --overwrite."
            )
        teacher_keys = {k: v for k, v in self.distiller.state_dict().items() if k.startswith("teacher.")}
        try:
            self.distiller.load_state_dict({**process_state["distiller"], **teacher_keys})
        except RuntimeError as err:
            raise FofakdError(f"checkpoint '{self.run_dir.last}' does not fit this run's models ({str(err)[:200]}); "
                              "resume with the options the run was started with.") from None
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler:
            self.scheduler.load_state_dict(state["scheduler"])
        if self.scaler:
            self.scaler.load_state_dict(state["scaler"])
        if self.ema:
            self.ema.module.load_state_dict(state["ema"])
        self.epoch, self.step, self.best_score = state["epoch"], state["step"], state["best_score"]
        self.history, self.wall_time = list(state["history"]), state["wall_time"]
        self.epoch_step, self.partial = state["epoch_step"], state["partial"]
        if self.cfg.epochs < self.epoch:
            raise FofakdError(f"--epochs {self.cfg.epochs} is fewer than the {self.epoch} epochs '{self.run_dir.path}' "
                              f"has already trained; give --epochs {self.epoch} or more to resume it.")
        # Applied once the epoch's loader has replayed the batches already trained on (see _train_epoch).
        self.pending_rng = process_state["rng"]

    # ------------------------------------------------------------------------------------------------ loop
    def _set_epoch(self, loader: Any, epoch: int) -> None:
        if hasattr(loader, "set_epoch"):
            loader.set_epoch(epoch)
        elif hasattr(getattr(loader, "sampler", None), "set_epoch"):
            loader.sampler.set_epoch(epoch)
        elif getattr(loader, "generator", None) is not None:  # a plain DataLoader: reseed its shuffling per epoch
            loader.generator.manual_seed(self.cfg.seed * 1000 + epoch)

    def _signal_handler(self, signum: int, _frame: Any) -> None:
        self.stop_signal = signum
        signal.signal(signum, signal.SIG_DFL)  # a second signal stops at once

    def _stop_requested(self) -> int:
        if not self.info.enabled:
            return self.stop_signal
        flag = all_reduce_sum(torch.tensor([float(self.stop_signal)], device=self.device), self.info)
        return int(flag.item()) and (self.stop_signal or signal.SIGTERM)

    def _train_epoch(self) -> dict[str, float]:
        cfg, loader = self.cfg, self.task.train_loader
        self.model.train()
        if self.pending_rng is not None and self.epoch_step == 0:
            # Saved at an epoch's end: restored where it was saved, before the next epoch seeds its loader.
            set_rng_state(self.pending_rng)
            self.pending_rng = None
        self._set_epoch(loader, self.epoch)
        sums: dict[str, float] = dict(self.partial["sums"])
        samples, before = self.partial["samples"], self.partial["elapsed"]
        batches = iter(loader)
        for _ in range(self.epoch_step):  # replay what a mid-epoch checkpoint already trained on
            next(batches)
        if self.pending_rng is not None:
            set_rng_state(self.pending_rng)
            self.pending_rng = None
        start = time.perf_counter()
        show_bar = self.info.is_main and sys.stderr.isatty()
        bar = tqdm(total=len(loader), initial=self.epoch_step, desc=f"epoch {self.epoch + 1}/{cfg.epochs}",
                   disable=not show_bar, leave=False)
        for images, targets in batches:
            if not len(images):  # every image of the batch was unreadable (and named in a warning)
                self.epoch_step += 1
                continue
            if cfg.channels_last and isinstance(images, torch.Tensor):
                images = images.contiguous(memory_format=torch.channels_last)
            with autocast_context(self.device, cfg.amp):
                out = self.model(images, targets)
            names = [k for k in out if k.startswith(("loss", "diag/"))]
            # One host sync per step for every loss part and diagnostic, not one each.
            values = dict(zip(names, torch.stack([out[k].detach().float().reshape(()) for k in names]).tolist()))
            bad = [k for k, v in values.items() if k.startswith("loss") and not math.isfinite(v)]
            if bad:
                kept = ("the last good checkpoint is kept" if self.run_dir.last.is_file()
                        else "no checkpoint was written yet")
                raise FofakdError(
                    f"the loss became {values[bad[-1]]} at step {self.step + 1} (epoch {self.epoch + 1}) in "
                    f"{', '.join(sorted(bad))}; {kept}; lower --lr or set --clip-grad."
                )
            self.optimizer.zero_grad(set_to_none=True)
            self._backward_and_step(out["loss"])
            self.step += 1
            self.epoch_step += 1
            if self.scheduler:
                self.scheduler.step_update(self.step)
            if self.ema:
                self.ema.update(self.distiller.student, step=self.step)
            batch = len(images)
            samples += batch
            for k, v in values.items():
                sums[k] = sums.get(k, 0.0) + v * batch
            bar.set_postfix(loss=f"{values['loss']:.4f}", img_s=f"{samples / (time.perf_counter() - start):.0f}")
            bar.update()
            fault_point("kill-at-step")
            fault_point("term-at-step")
            signum = self._stop_requested()
            if signum:
                bar.close()
                self.partial = {"sums": sums, "samples": samples, "elapsed": before + time.perf_counter() - start}
                self.save(best=False)
                raise RunInterrupted(signum, str(self.run_dir.last))
        bar.close()
        if samples == 0:
            raise FofakdError(f"epoch {self.epoch + 1} trained on no image: every training image was unreadable (the "
                              "warnings above name them); fix or replace the images.")
        elapsed = before + time.perf_counter() - start
        self.epoch_step, self.partial = 0, {"sums": {}, "samples": 0, "elapsed": 0.0}
        if self.scheduler:
            self.scheduler.step(self.epoch + 1)
        if self.info.enabled:
            distribute_bn(self.distiller.student, self.info.world_size, reduce=True)
        means = {k: v / max(samples, 1) for k, v in sums.items()}
        return {**means, "train_images_per_s": samples * self.info.world_size / elapsed, "train_time_s": elapsed}

    def _backward_and_step(self, loss: torch.Tensor) -> None:
        params = self.distiller.trainable_parameters()
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            if self.cfg.clip_grad:
                self.scaler.unscale_(self.optimizer)
                torch.nn.utils.clip_grad_norm_(params, self.cfg.clip_grad)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            return
        loss.backward()
        if self.cfg.clip_grad:
            torch.nn.utils.clip_grad_norm_(params, self.cfg.clip_grad)
        self.optimizer.step()

    def fit(self) -> dict[str, Any]:
        """Train to the last epoch (or `stop_after` epochs), then evaluate and write the bare student."""
        cfg = self.cfg
        if self.info.is_main and not cfg.resume:
            self.run_dir.write_config(self.task.run_config())
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(self.run_dir.tensorboard), purge_step=self.epoch + 1) if self.info.is_main else None
        reset_peak_memory(self.device)
        self.tracker = (open_tracker(cfg.tracker, self.run_dir.path, self.task.run_config(), cfg.resume)
                        if self.info.is_main else None)
        handlers = {}
        if threading.current_thread() is threading.main_thread():
            handlers = {sig: signal.signal(sig, self._signal_handler) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            epochs_this_run = 0
            while self.epoch < cfg.epochs:
                if cfg.stop_after is not None and epochs_this_run >= cfg.stop_after:
                    self._log(f"stopped after {epochs_this_run} epochs; continue with --resume")
                    return {"stopped": True, "epoch": self.epoch}
                row = self._run_epoch(writer)
                fault_point("kill-after-epoch")
                epochs_this_run += 1
                self._log(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))
            return self._finish(writer)
        finally:
            for sig, handler in handlers.items():
                signal.signal(sig, handler)
            if self.info.is_main:
                self.run_dir.release()

    def _run_epoch(self, writer: Any) -> dict[str, Any]:
        stats = self._train_epoch()
        lr = self.optimizer.param_groups[0]["lr"]
        row: dict[str, Any] = {"epoch": self.epoch + 1, "epochs": self.cfg.epochs, "lr": lr, **stats}
        if self.task.has_validation:
            row.update(self.task.validate(self.distiller.student))
            if self.ema:
                row[f"ema_{self.score_key}"] = self.task.validate(self.ema.module)[self.score_key]
        self.wall_time += stats["train_time_s"]
        row["wall_time_s"] = self.wall_time
        self.epoch += 1
        score = row.get(self.score_key, -row.get("loss", 0.0))
        best = score > self.best_score
        self.best_score = max(self.best_score, score)
        self.history.append(row)
        self.save(best)
        if self.info.is_main:
            self.run_dir.write_metrics(self.history)
            for key, value in row.items():
                if key not in ("epoch", "epochs"):
                    writer.add_scalar(key, value, self.epoch)
            writer.flush()
            if self.tracker is not None:
                self.tracker.log_epoch(row, self.epoch)
        barrier(self.info)
        return row

    def _finish(self, writer: Any) -> dict[str, Any]:
        final = self.ema.module if self.ema else self.distiller.student
        test, line = self.task.test(final, self.history)
        summary = {
            "command": self.command, "method": self.method, "epochs": self.epoch, **test,
            f"best_{self.score_key}": max((r[self.score_key] for r in self.history if self.score_key in r),
                                          default=None),
            "train_time_s": self.wall_time, "extra_parameters": self.distiller.num_extra_parameters(),
            "student_parameters": sum(p.numel() for p in self.distiller.student.parameters()),
            "weights": "ema" if self.ema else "final",
            # Of this invocation (a resumed run's counts from its resume); process RSS on a CPU, tensors on a GPU.
            "peak_memory_mb": peak_memory_mb(self.device),
        }
        if self.info.is_main:
            save_student(final, self.spec, self.run_dir.path)
            self.run_dir.write_json("summary.json", summary)
            writer.close()
            if self.tracker is not None:
                self.tracker.finish(summary)
        self._log(f"{line}; student in {self.run_dir.path / 'student.safetensors'}")
        barrier(self.info)
        cleanup(self.info)
        return summary

    def _log(self, message: str) -> None:
        if self.info.is_main:
            print(message, flush=True)

