"""`sensorstream train | evaluate | predict`: the model's life cycle from the command line.

train     fit TimesNet or a TCN (--arch) on a labelled .ts/.csv file, early-stopping on a
          stratified validation split of that file, then export a model directory.
evaluate  score a model directory on a labelled file (text report, PNG, optional JSON).
predict   one JSON line per case of a file: index, label, class_id, score, probabilities.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from stream.commands.arguments import add_runtime_flag, integer, number
from stream.errors import SensorstreamError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from timesnet.batch_predictor import BatchPredictor
    from timesnet.train import EpochRecord, TrainingConfig

# A dilation past any window length only pads; this keeps the TCN's padding arithmetic small.
MAX_DILATION = 1_000_000


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the train, evaluate and predict subcommands."""
    _register_train(subparsers)
    _register_evaluate(subparsers)
    _register_predict(subparsers)


def _register_train(subparsers: argparse._SubParsersAction) -> None:
    """The `train` subcommand and its hyperparameter flags (defaults ship models/uwave)."""
    p = subparsers.add_parser("train", help="train TimesNet or a TCN on a labelled file, export it")
    add_fit_flags(p, epochs=30)
    p.add_argument(
        "--val-fraction",
        type=number(0, 1, above_low=True, below_high=True),
        default=0.25,
        help="stratified share of the training file each run holds out (default 0.25)",
    )
    p.add_argument(
        "--cross-fit",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="TimesNet: train 1/val-fraction members, each holding out another fold, "
        "for --epochs; ship their mean probabilities (default on)",
    )
    add_selection_flags(p)
    add_optimizer_flags(p)
    add_timesnet_flags(p, num_kernels=3)
    p.add_argument(
        "--arch",
        choices=("timesnet", "tcn"),
        default="timesnet",
        help="network: timesnet (default) or tcn (fast dilated Conv1D network)",
    )
    p.add_argument("--tcn-channels", type=integer(1, 4096), default=32, help="TCN hidden channels")
    p.add_argument("--tcn-kernel-size", type=integer(1, 1001), default=3)
    p.add_argument(
        "--tcn-downsample",
        type=integer(1, 10_000),
        default=1,
        help="samples per step of the TCN's patch stem (default 1: no stem)",
    )
    p.add_argument(
        "--tcn-dilations",
        default=None,
        help="comma-separated, e.g. 1,2,4 (default: 1,2,4,... until every step "
        "sees the whole window)",
    )
    p.add_argument(
        "--tcn-causal",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="causal (left) padding instead of 'same' (default off)",
    )
    p.add_argument(
        "--tcn-head",
        choices=("last", "gap"),
        default="gap",
        help="classify from the last step or the global average (default gap)",
    )
    add_augment_flags(p)
    p.set_defaults(func=_train, _parser=p)


def add_selection_flags(p: argparse.ArgumentParser) -> None:
    """--patience and --refit: how the validation run picks the epoch count (train, distill)."""
    p.add_argument(
        "--patience",
        type=integer(1, 100_000),
        default=25,
        help="epochs without improvement to stop",
    )
    p.add_argument(
        "--refit",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="retrain on all training data for the best epoch count (default on)",
    )


def add_timesnet_flags(p: argparse.ArgumentParser, num_kernels: int) -> None:
    """The TimesNet shape flags of train and distill (d_model ... dropout)."""
    p.add_argument("--d-model", type=integer(1, 4096), default=32)
    p.add_argument("--d-ff", type=integer(1, 4096), default=32)
    p.add_argument("--e-layers", type=integer(1, 64), default=2)
    p.add_argument("--top-k", type=integer(1, 64), default=3, help="number of fixed FFT periods")
    p.add_argument(
        "--num-kernels",
        type=integer(1, 64),
        default=num_kernels,
        help="Inception kernels 1,3,..,2k-1",
    )
    p.add_argument("--dropout", type=number(0, 1, below_high=True), default=0.3)


def add_fit_flags(p: argparse.ArgumentParser, epochs: int) -> None:
    """What every training command takes: data, output, name, epochs, seed."""
    p.add_argument("--data", required=True, help="training file (.ts or PaddleX .csv)")
    p.add_argument("--out", required=True, help="model directory to write")
    p.add_argument("--name", default=None, help="model name (default: the --out directory name)")
    p.add_argument(
        "--epochs",
        type=integer(1, 100_000),
        default=epochs,
        help=f"maximum epochs (default {epochs})",
    )
    p.add_argument(
        "--seed", type=integer(0, 2**32 - 1), default=0, help="seed for weights, split, shuffles"
    )


def add_optimizer_flags(p: argparse.ArgumentParser) -> None:
    """Batch size, learning rate and its schedule, weight decay, label smoothing."""
    p.add_argument("--batch-size", type=integer(1, 65_536), default=16)
    p.add_argument("--learning-rate", type=number(0, 10, above_low=True), default=1e-3)
    p.add_argument("--weight-decay", type=number(0, 10), default=0.05)
    p.add_argument("--label-smoothing", type=number(0, 1, below_high=True), default=0.1)
    p.add_argument(
        "--cosine",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="cosine learning-rate decay over --epochs (default on)",
    )


def add_augment_flags(p: argparse.ArgumentParser) -> None:
    """--augment and --mixup-alpha."""
    p.add_argument(
        "--augment",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="scaling, jitter, time shift, magnitude warp (default on)",
    )
    p.add_argument("--mixup-alpha", type=number(0, 100), default=0.2, help="0 turns mixup off")


def _register_evaluate(subparsers: argparse._SubParsersAction) -> None:
    """The `evaluate` subcommand."""
    p = subparsers.add_parser("evaluate", help="score a model directory on a labelled file")
    p.add_argument("--model", required=True, help="model directory (e.g. models/uwave)")
    p.add_argument("--data", required=True, help="labelled test file (.ts or PaddleX .csv)")
    p.add_argument("--json", action="store_true", help="end stdout with one JSON object")
    p.add_argument("--batch-size", type=integer(1, 65_536), default=64)
    p.add_argument(
        "--report-dir",
        default=None,
        help="where the text/JSON report and confusion PNG go (default MODEL/reports)",
    )
    p.add_argument(
        "--record",
        action="store_true",
        help="store the metrics as test_metrics in the model manifest",
    )
    _add_device_flags(p)
    p.set_defaults(func=_evaluate, _parser=p)


def _register_predict(subparsers: argparse._SubParsersAction) -> None:
    """The `predict` subcommand."""
    p = subparsers.add_parser("predict", help="predict every case of a .ts or .csv file")
    p.add_argument("--model", required=True, help="model directory (e.g. models/uwave)")
    p.add_argument("--data", required=True, help="file to predict (.ts or PaddleX .csv)")
    p.add_argument("--batch-size", type=integer(1, 65_536), default=64)
    p.add_argument("--out", default=None, help="JSON-lines output file (default stdout)")
    _add_device_flags(p)
    p.set_defaults(func=_predict, _parser=p)


def _add_device_flags(p: argparse.ArgumentParser) -> None:
    """--device, --threads and --runtime, shared by the inference commands."""
    p.add_argument("--device", default="cpu", help="cpu | gpu | gpu:N (default cpu)")
    p.add_argument(
        "--threads", type=integer(1, 1024), default=2, help="CPU math threads (default 2)"
    )
    add_runtime_flag(p)


@contextmanager
def model_errors():
    """Turn the timesnet package's ModelError into the CLI's one-line SensorstreamError."""
    from timesnet.errors import ModelError

    try:
        yield
    except ModelError as exc:
        raise SensorstreamError(str(exc)) from exc


def command_line(args: argparse.Namespace) -> str:
    """The full command with every option spelled out, so a run can be repeated exactly."""
    parts = ["sensorstream", args.command]
    for action in args._parser._actions:
        if not action.option_strings or action.dest == "help":
            continue
        value = getattr(args, action.dest)
        flag = next(o for o in action.option_strings if o.startswith("--"))
        if isinstance(action, argparse.BooleanOptionalAction):
            parts.append(flag if value else "--no-" + flag[2:])
        elif isinstance(action, argparse._StoreTrueAction):
            parts.extend([flag] if value else [])
        elif value is not None:
            parts.extend([flag, str(value)])
    import shlex

    return shlex.join(parts)


def training_config(args: argparse.Namespace) -> TrainingConfig:
    """The TrainingConfig the optimizer, augmentation, epoch and seed flags describe."""
    from timesnet.augment import AugmentConfig
    from timesnet.train import TrainingConfig

    augment = AugmentConfig(mixup_alpha=args.mixup_alpha)
    if not args.augment:
        augment = AugmentConfig(0.0, 0.0, 0, 0.0, 0, args.mixup_alpha)
    with model_errors():
        return TrainingConfig(
            epochs=args.epochs,
            batch_size=args.batch_size,
            learning_rate=args.learning_rate,
            weight_decay=args.weight_decay,
            label_smoothing=args.label_smoothing,
            patience=args.patience,
            seed=args.seed,
            augment=augment,
            cosine_schedule=args.cosine,
        )


def _train(args: argparse.Namespace) -> int:
    """Handler of `sensorstream train`."""
    from timesnet.crossfit import fit_ensemble_model_dir
    from timesnet.readers import read_dataset
    from timesnet.train import fit_model_dir

    training = training_config(args)
    with model_errors():
        network_options = _network_options(args)
        fit = fit_ensemble_model_dir
        if not (args.cross_fit and args.arch == "timesnet"):
            fit = partial(fit_model_dir, refit=args.refit, architecture=args.arch)
        manifest = fit(
            read_dataset(args.data),
            args.out,
            name=args.name or Path(args.out).name,
            network_options=network_options,
            top_k=args.top_k,
            training=training,
            val_fraction=args.val_fraction,
            command=command_line(args),
            on_epoch=print_epoch,
        )
    print(f"wrote {args.out}: model {manifest.name} version {manifest.version}")
    return 0


def _network_options(args: argparse.Namespace) -> dict:
    """The config fields of the chosen architecture that come from flags."""
    if args.arch == "timesnet":
        return {
            "d_model": args.d_model,
            "d_ff": args.d_ff,
            "e_layers": args.e_layers,
            "num_kernels": args.num_kernels,
            "dropout": args.dropout,
        }
    try:
        dilations = tuple(int(d) for d in (args.tcn_dilations or "").split(",") if d.strip())
    except ValueError as exc:
        raise SensorstreamError(
            f"--tcn-dilations {args.tcn_dilations!r}: give comma-separated integers such as 1,2,4,8"
        ) from exc
    if not all(1 <= d <= MAX_DILATION for d in dilations):
        raise SensorstreamError(
            f"--tcn-dilations {args.tcn_dilations!r}: each dilation from 1 "
            f"to {MAX_DILATION:,}, such as 1,2,4,8"
        )
    return {
        "hidden_channels": args.tcn_channels,
        "kernel_size": args.tcn_kernel_size,
        "dilations": dilations,
        "dropout": args.dropout,
        "causal": args.tcn_causal,
        "head": args.tcn_head,
        "downsample": args.tcn_downsample,
    }


def print_epoch(record: EpochRecord, total: int, phase: str) -> None:
    """One progress line per epoch on stdout."""
    val = ""
    if record.val_accuracy is not None:
        val = f"  val_acc {record.val_accuracy:.4f}  val_loss {record.val_loss:.4f}"
    print(
        f"[{phase}] epoch {record.epoch:3d}/{total}  loss {record.loss:.4f}{val}"
        f"  {record.seconds:.1f}s",
        flush=True,
    )


def _evaluate(args: argparse.Namespace) -> int:
    """Handler of `sensorstream evaluate`."""
    from timesnet.manifest import write_manifest
    from timesnet.predictor import load_predictor
    from timesnet.readers import read_dataset
    from timesnet.report import evaluate_predictions, save_confusion_png

    with model_errors():
        predictor = load_predictor(args.model, args.device, args.threads, args.runtime)
        manifest = predictor.manifest
        data = read_dataset(args.data, manifest.window_length, manifest.labels)
        if data.y is None:
            raise SensorstreamError(
                f"{args.data} has no class labels; evaluate needs a "
                "labelled file (use `sensorstream predict` for unlabelled)"
            )
        probabilities, seconds = _predict_all(predictor, data.x, args.batch_size)
        report = evaluate_predictions(data.y, probabilities.argmax(axis=1), manifest.labels)
    metrics = {
        **report.to_dict(),
        "windows_per_s": round(len(data) / seconds, 1),
        "batch_size": args.batch_size,
        "runtime": args.runtime,
        "data": Path(args.data).name,
        "data_sha256": data.source_sha256,
        "command": command_line(args),
    }
    report_dir = Path(args.report_dir or Path(args.model) / "reports")
    report_dir.mkdir(parents=True, exist_ok=True)
    stem = report_dir / Path(args.data).stem
    Path(f"{stem}.txt").write_text(report.to_text() + "\n")
    Path(f"{stem}.json").write_text(json.dumps(metrics, indent=2) + "\n")
    save_confusion_png(report, f"{stem}.png")
    print(report.to_text())
    print(
        f"windows/s {metrics['windows_per_s']} "
        f"(batch {args.batch_size}, {args.runtime} on {args.device})"
    )
    print(f"report {stem}.txt, {stem}.json, confusion matrix {stem}.png")
    if args.record:
        write_manifest(args.model, manifest.with_test_metrics(metrics))
        print(f"recorded test_metrics in {Path(args.model) / 'manifest.json'}")
    if args.json:
        print(json.dumps(metrics))
    return 0


def _predict_all(
    predictor: BatchPredictor, x: npt.NDArray[np.float32], batch_size: int
) -> tuple[npt.NDArray[np.float32], float]:
    """Probabilities [N, K] of windows x [N, L, C] in batches, and the seconds it took."""
    import numpy as np

    if batch_size < 1:
        raise SensorstreamError(f"--batch-size must be >= 1, got {batch_size}")
    started = time.perf_counter()
    parts = [predictor.predict_batch(x[i : i + batch_size]) for i in range(0, len(x), batch_size)]
    return np.concatenate(parts, axis=0), time.perf_counter() - started


def _predict(args: argparse.Namespace) -> int:
    """Handler of `sensorstream predict`."""
    from timesnet.predictor import load_predictor
    from timesnet.readers import read_dataset

    with model_errors():
        predictor = load_predictor(args.model, args.device, args.threads, args.runtime)
        manifest = predictor.manifest
        data = read_dataset(args.data, manifest.window_length)
        probabilities, _ = _predict_all(predictor, data.x, args.batch_size)
    out = open(args.out, "w") if args.out else sys.stdout  # noqa: SIM115 - closed below
    try:
        for index, row in enumerate(probabilities):
            class_id = int(row.argmax())
            line = {
                "index": index,
                "label": manifest.labels[class_id],
                "class_id": class_id,
                "score": float(row[class_id]),
                "probabilities": [float(p) for p in row],
            }
            out.write(json.dumps(line) + "\n")
    finally:
        if args.out:
            out.close()
    if args.out:
        print(f"wrote {len(probabilities)} predictions to {args.out}", file=sys.stderr)
    return 0
