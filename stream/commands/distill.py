"""`sensorstream distill`: train one TimesNet to copy a teacher model (e.g. the ensemble).

The student is selected and exported like `sensorstream train --no-cross-fit`: a
stratified validation split of the training file picks the epoch count, then (--refit)
it is retrained on every case; the teacher scores each augmented training batch.
Defaults are the recipe chosen on validation for distilling the shipped ensemble
(BENCHMARKS.md, "Distilled default model").
"""

from __future__ import annotations

import argparse
from pathlib import Path

from stream.commands.arguments import add_runtime_flag, integer, number
from stream.commands.model import (
    add_augment_flags,
    add_fit_flags,
    add_optimizer_flags,
    add_selection_flags,
    add_timesnet_flags,
    command_line,
    model_errors,
    print_epoch,
    training_config,
)
from stream.errors import SensorstreamError


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the distill subcommand."""
    p = subparsers.add_parser(
        "distill", help="train one TimesNet on a teacher model's probabilities, export it"
    )
    p.add_argument("--teacher", required=True, help="teacher model directory")
    add_fit_flags(p, epochs=60)
    p.add_argument(
        "--val-fraction",
        type=number(0, 1, below_high=True),
        default=0.25,
        help="stratified share of the training file held out to pick the epoch (default 0.25; "
        "0: train on every case for --epochs)",
    )
    add_selection_flags(p)
    p.add_argument(
        "--temperature",
        type=number(0, 100, above_low=True),
        default=2.0,
        help="softens teacher and student alike before the KL term (default 2)",
    )
    p.add_argument(
        "--hard-weight",
        type=number(0, 1),
        default=0.0,
        help="weight of the label loss; the rest goes to the teacher (default 0)",
    )
    add_optimizer_flags(p)
    add_runtime_flag(p)  # what runs the teacher; the manifest's command line records it
    add_timesnet_flags(p, num_kernels=2)
    add_augment_flags(p)
    p.add_argument(
        "--threads", type=integer(1, 1024), default=2, help="teacher's CPU math threads (default 2)"
    )
    p.set_defaults(func=_distill, _parser=p)


def _distill(args: argparse.Namespace) -> int:
    """Handler of `sensorstream distill`."""
    from timesnet.distill import DistillConfig, fit_distilled_model_dir
    from timesnet.predictor import load_predictor
    from timesnet.readers import read_dataset

    if not Path(args.teacher).is_dir():
        raise SensorstreamError(f"--teacher {args.teacher}: no such model directory")
    if not Path(args.data).is_file():
        raise SensorstreamError(f"--data {args.data}: no such file")
    training = training_config(args)
    with model_errors():
        distill = DistillConfig(args.temperature, args.hard_weight)
        teacher = load_predictor(args.teacher, "cpu", args.threads, args.runtime)
        try:
            manifest = fit_distilled_model_dir(
                teacher,
                args.teacher,
                read_dataset(args.data, teacher.manifest.window_length, teacher.manifest.labels),
                args.out,
                name=args.name or Path(args.out).name,
                network_options={
                    "d_model": args.d_model,
                    "d_ff": args.d_ff,
                    "e_layers": args.e_layers,
                    "num_kernels": args.num_kernels,
                    "dropout": args.dropout,
                },
                top_k=args.top_k,
                training=training,
                distill=distill,
                val_fraction=args.val_fraction,
                refit=args.refit,
                command=command_line(args),
                on_epoch=print_epoch,
            )
        finally:
            teacher.close()
    print(f"wrote {args.out}: model {manifest.name} version {manifest.version}")
    return 0
