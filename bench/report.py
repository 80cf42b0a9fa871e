"""The results as a Markdown table: figures, ratios, targets and whether each holds."""

from __future__ import annotations

from typing import Any

from bench.roofline_report import bench_rows

PAYLOAD_TARGET = 1.5  # bytes per device within 1.5 x L x C x 4
RATIO_TARGET = 0.8


def _fmt(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _quantiles(run: dict[str, Any], name: str) -> str:
    """p50 / p99 / max of a latency figure, in ms."""
    return " / ".join(_fmt(run[f"{name}_{q}_ms"]) for q in ("p50", "p99", "max"))


def targets(results: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """(target, measured, holds) for each target of issue 6."""
    found: list[tuple[str, str, bool]] = []
    for name, label in (("binary", "binary chunk"), ("chunk", "JSON chunk")):
        ratio = results["ingest"][name]["ratio"]
        found.append((f"ingest {label} >= 0.8 x consumer", _fmt(ratio), ratio >= RATIO_TARGET))
    bound = results["inference_bound"]
    found.append(
        (
            "inference-bound >= 0.8 x predictor best",
            f"{_fmt(bound['ratio'])} (x same batch right before/after: "
            f"{_fmt(bound['ratio_to_predictor_adjacent'])})",
            bound["ratio"] >= RATIO_TARGET,
        )
    )
    live = results["latency"]["at_least_once"]
    limit_ms = live["max_wait_ms"] + 3 * results["full_batch_inference_ms"]
    found.append(
        (
            f"p99 <= max_wait + 3 x full batch = {_fmt(limit_ms)} ms",
            f"{_fmt(live['latency_p99_ms'])} ms",
            live["latency_p99_ms"] <= limit_ms,
        )
    )
    loop = results.get("user_loop") or {}
    for hop, row in loop.get("hops", {}).items():
        ratio = row["worker_over_paddlex_loop"]
        found.append(
            (
                f"worker >= {loop['target']:.0f} x PaddleX-way loop, hop {hop}",
                f"{_fmt(ratio)} x",
                ratio >= loop["target"],
            )
        )
    for count, probe in results["memory"].items():
        ratio = probe["ratio_to_payload"]
        found.append(
            (
                f"memory {count} devices <= 1.5 x L x C x 4",
                f"{_fmt(ratio)} x ({_fmt(probe['bytes_per_device'])} B)",
                ratio <= PAYLOAD_TARGET,
            )
        )
    return found


def table(results: dict[str, Any]) -> str:
    """Every figure of the run as Markdown."""
    ing = results["ingest"]
    pred = results["predictor"]
    bound = results["inference_bound"]
    lat = results["latency"]
    back = results["backfill"]
    rows = [("figure", "value", "vs")]
    for name in ("binary", "chunk", "single"):
        r = ing[name]
        rows += [
            (
                f"1. consumer ceiling, {name} (records/s, MB/s)",
                f"{_fmt(r['consumer_records_per_s'])} rec/s, {_fmt(r['consumer_mb_per_s'])} MB/s",
                f"{_fmt(r['consumer_samples_per_s'])} samples/s",
            ),
            (
                f"1b. columnar fetch alone, {name} (records/s)",
                f"{_fmt(r['columnar_consumer_records_per_s'])} rec/s",
                f"{_fmt(r['columnar_consumer_records_per_s'] / r['consumer_records_per_s'])}"
                " x kafka-python",
            ),
            (
                f"2. pipeline ingest, {name} (samples/s)",
                _fmt(r["pipeline_samples_per_s"]),
                f"{_fmt(r['ratio'])} x ceiling, {_fmt(r['ratio_to_columnar'])} x columnar fetch "
                f"(inference {r['pipeline_inference_share']:.1%})",
            ),
        ]
    by_batch = ", ".join(f"{b}: {_fmt(v)}" for b, v in pred["windows_per_s_by_batch"].items())
    rows += [
        (
            "3. predictor windows/s by batch",
            by_batch,
            f"best {pred['best_batch']}, gain {_fmt(pred['batching_gain'])} x batch 1",
        ),
        (
            "4. pipeline inference-bound (hop 16, windows/s)",
            _fmt(bound["windows_per_s"]),
            f"{_fmt(bound['ratio'])} x best; "
            f"{_fmt(bound['ratio_to_predictor_adjacent'])} x same batch measured right "
            f"before/after; mean batch {_fmt(bound['mean_batch'])}",
        ),
    ]
    for mode, r in lat.items():
        rows.append(
            (
                f"5. latency {mode} at 50 % ({_fmt(r['offered_windows_per_s'])} windows/s) "
                "p50/p99/max ms",
                _quantiles(r, "latency"),
                f"visible {_quantiles(r, 'visible_latency')}; "
                f"max_wait {r['max_wait_ms']} ms, mean batch "
                f"{_fmt(r['mean_batch'])} in {_fmt(r['mean_batch_inference_ms'])} ms",
            )
        )
    for count, probe in results["memory"].items():
        rows.append(
            (
                f"6. memory, {count} active devices (bytes/device)",
                _fmt(probe["bytes_per_device"]),
                f"{_fmt(probe['ratio_to_payload'])} x L x C x 4",
            )
        )
    for mode, r in back.items():
        rows.append(
            (
                f"7. backfill {mode}, {r['devices_at_100hz']} devices at 100 Hz (samples/s)",
                _fmt(r["samples_per_s"]),
                f"{_fmt(r['real_time_multiple'])} x real time, "
                f"{_fmt(r['windows_per_s'])} windows/s",
            )
        )
    eos = results["exactly_once"]
    rows += [
        (
            "8. exactly-once / at-least-once throughput",
            _fmt(eos["throughput_ratio"]),
            "backfill workload",
        ),
        (
            "8. exactly-once / at-least-once p99 latency",
            _fmt(eos["latency_p99_ratio"]),
            f"visible p99 ratio {_fmt(eos['visible_latency_p99_ratio'])}",
        ),
    ]
    replay = results["replay"]
    r = replay["ingest_topic"]
    rows.append(
        (
            f"9. replay, ingest chunk topic (hop {r['hop']}, samples/s)",
            _fmt(r["samples_per_s"]),
            f"{_fmt(r['ratio_to_consumer'])} x consumer ceiling (chunk)",
        )
    )
    r = replay["backfill_topic"]
    rows.append(
        (
            f"9. replay, backfill topic (hop {r['hop']}, windows/s)",
            _fmt(r["windows_per_s"]),
            f"{_fmt(r['ratio_to_predictor'])} x predictor best; "
            f"{_fmt(r['samples_per_s'])} samples/s",
        )
    )
    if "roofline" in results:
        rows += bench_rows(results["roofline"])
    rows += _user_loop_rows(results.get("user_loop"))
    lines = [f"| {a} | {b} | {c} |" for a, b, c in rows]
    lines.insert(1, "|---|---|---|")
    lines += ["", "| target | measured | holds |", "|---|---|---|"]
    lines += [f"| {t} | {m} | {'yes' if ok else 'NO'} |" for t, m, ok in targets(results)]
    return "\n".join(lines)


def _user_loop_rows(loop: dict[str, Any] | None) -> list[tuple[str, str, str]]:
    """(11) the worker against the plain loop, per hop."""
    if not loop:
        return []
    runtime = loop["worker_runtime"]
    rows = []
    for hop, row in loop["hops"].items():
        rates = row["windows_per_s"]
        same = row.get("worker_over_loop_same_runtime")
        versus = (
            f"{_fmt(row['worker_over_paddlex_loop'])} x plain loop on Paddle Inference, "
            f"batch 1 ({_fmt(rates['loop/paddle'])})"
        )
        if same:
            versus += (
                f"; {_fmt(same)} x the same loop on {runtime} ({_fmt(rates[f'loop/{runtime}'])})"
            )
        rows.append(
            (
                f"11. worker vs plain loop, hop {hop} (windows/s, {loop['devices']} devices)",
                _fmt(rates["worker"]),
                versus,
            )
        )
    return rows
