"""`sensorstream add-stats`: store training statistics in an existing model's manifest.

`sensorstream train` writes them itself; this adds them to a model trained before,
or refreshes them: per-channel decile bins of the raw training samples with their
shares, and the training label shares (timesnet/training_stats.py). The worker's
drift gauges need them. The model files are not touched, so the version stays.
"""

from __future__ import annotations

import argparse

from stream.errors import SensorstreamError


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the add-stats subcommand."""
    p = subparsers.add_parser(
        "add-stats",
        help="store the training data's bins and label shares in a model's manifest",
    )
    p.add_argument("--model", required=True, help="model directory (e.g. models/uwave)")
    p.add_argument("--data", required=True, help="the model's training file (.ts or .csv)")
    p.add_argument(
        "--allow-other-data",
        action="store_true",
        help="accept a file other than the one the manifest says the model was trained on",
    )
    p.set_defaults(func=_add_stats, _parser=p)


def _add_stats(args: argparse.Namespace) -> int:
    """Handler of `sensorstream add-stats`."""
    from timesnet.errors import ModelError
    from timesnet.manifest import load_manifest, write_manifest
    from timesnet.readers import read_dataset
    from timesnet.training_stats import dataset_stats

    try:
        manifest = load_manifest(args.model)
        data = read_dataset(args.data, manifest.window_length, manifest.labels)
    except ModelError as exc:
        raise SensorstreamError(str(exc)) from exc
    trained_on = manifest.training.get("data_sha256")
    if trained_on and trained_on != data.source_sha256 and not args.allow_other_data:
        raise SensorstreamError(
            f"--data {args.data} (sha256 {data.source_sha256[:16]}...) is not the file "
            f"{args.model} was trained on (sha256 {str(trained_on)[:16]}...); pass that "
            "file, or --allow-other-data if this one stands for what the model should see"
        )
    if data.n_channels != manifest.channels:
        raise SensorstreamError(
            f"--data {args.data} has {data.n_channels} channels, the model {manifest.channels}"
        )
    try:
        stats = dataset_stats(data)
    except ValueError as exc:
        raise SensorstreamError(f"--data {args.data}: {exc}") from exc
    path = write_manifest(args.model, manifest.with_training_stats(stats))
    print(
        f"wrote training_stats ({stats.samples:,} samples, {stats.cases:,} cases) to {path}; "
        f"version {manifest.version} unchanged"
    )
    return 0
