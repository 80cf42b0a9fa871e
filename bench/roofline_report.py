"""The roofline figures as Markdown: python -m bench.roofline, and rows of python -m bench."""

from __future__ import annotations

from typing import Any


def _m(flops: float) -> str:
    return f"{flops / 1e6:,.2f}" if flops < 1e8 else f"{flops / 1e6:,.0f}"


def flops_table(results: dict[str, Any]) -> list[str]:
    """FLOPs per window of each model, by kind, against paddle.flops."""
    lines = [
        "| model | MFLOP/window nominal | effective | conv | linear | amplitude | element-wise "
        "| paddle.flops x 2 | hand / tool |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, row in results["models"].items():
        kinds = row["by_kind"]

        def kind(key: str, kinds: dict[str, Any] = kinds) -> str:
            found = kinds.get(key)
            if not found:
                return "0"
            if abs(found["nominal"] - found["effective"]) < 1:
                return _m(found["nominal"])
            return f"{_m(found['nominal'])} ({_m(found['effective'])} eff.)"

        tool = row["paddle_flops_macs"]
        ratio = row["hand_conv_linear_over_2x_tool"]
        lines.append(
            f"| {name} | {_m(row['flops_nominal'])} | {_m(row['flops_effective'])} "
            f"| {kind('conv')} | {kind('linear')} | {kind('amplitude')} | {kind('elementwise')} "
            f"| {_m(2 * tool) if tool else 'n/a'} | {f'{ratio:.4f}' if ratio else 'n/a'} |"
        )
    return lines


def peak_table(results: dict[str, Any]) -> list[str]:
    """GEMM GFLOP/s per library, one column per thread count (CPU) or precision (GPU)."""
    peaks = results["peaks"]
    if results["device"] == "cpu":
        columns = sorted({p["threads"] for p in peaks})
        names = [f"{t} thread{'s' if t > 1 else ''}" for t in columns]

        def cell(p: dict[str, Any], column: Any) -> bool:
            return bool(p["threads"] == column)
    else:
        columns = ["fp32", "tf32-allowed"]
        names = ["float32 (TF32 off)", "as the library leaves it (TF32 allowed)"]

        def cell(p: dict[str, Any], column: Any) -> bool:
            return bool(p["precision"] == column)

    lines = ["| GEMM through | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for label in dict.fromkeys(p["label"] for p in peaks):
        row = [label]
        for column in columns:
            match = [p for p in peaks if p["label"] == label and cell(p, column)]
            row.append(f"{match[0]['gflops']:,.0f} GFLOP/s (n={match[0]['n']})" if match else "-")
        lines.append("| " + " | ".join(row) + " |")
    return lines


def achieved_table(results: dict[str, Any]) -> list[str]:
    """windows/s at every batch and the best batch's share of the peak, per predictor."""
    peak = results["peak_gflops"]
    lines = [
        f"| model / runtime | windows/s by batch (% of the {peak:,.0f} GFLOP/s peak, "
        "effective FLOPs) | best batch | GFLOP/s at best | % of peak effective / nominal |",
        "|---|---|---|---|---|",
    ]
    for key, row in results["achieved"].items():
        rates = row["windows_per_s"]
        shares = row.get("fraction_of_peak_effective", {})
        cells = ", ".join(
            f"{b}: {_rate(r)}" + (f" ({shares[b]:.0%})" if b in shares else "")
            for b, r in rates.items()
        )
        best = str(row["best_batch"])
        gflops = row.get("gflops_effective", {}).get(best)
        effective = shares.get(best)
        nominal = row.get("fraction_of_peak_nominal", {}).get(best)
        lines.append(
            f"| {key} | {cells} | {best} | {f'{gflops:,.1f}' if gflops else 'n/a'} "
            f"| {f'{effective:.0%} / {nominal:.0%}' if effective else 'n/a'} |"
        )
    return lines


def profile_table(results: dict[str, Any]) -> list[str]:
    """The default predictor's operators at its best batch: share of time and what bounds it."""
    found = results.get("profile")
    if not found:
        return []
    lines = [
        f"Per-operator profile: {found['model']} on {found['runtime']}, batch {found['batch']}, "
        f"{found['runs']} calls, {found['ms_per_window']:.3f} ms per window in operators "
        f"(peak {found['peak_gflops']:,.0f} GFLOP/s, numpy copy "
        f"{found['copy_bandwidth_gbs']:,.1f} GB/s)",
        "",
        "| operators | share of time | share of FLOPs | ms/window | calls per call | bound |",
        "|---|---|---|---|---|---|",
    ]
    for row in found["groups"]:
        lines.append(_profile_row(f"**{row['name']}** (all)", row))
    for row in found["top_operators"]:
        lines.append(_profile_row(f"{row['name']} ({row['group']})", row))
    return lines


def _profile_row(name: str, row: dict[str, Any]) -> str:
    return (
        f"| {name} | {row['share']:.1%} | {_share(row['flop_share'])} | {row['ms_per_window']:.4f} "
        f"| {row['calls_per_run']:,.0f} | {row['bound']} |"
    )


def _share(value: float | None) -> str:
    if not value:
        return "-"
    return f"{value:.2%}" if value < 0.01 else f"{value:.1%}"


def _rate(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def tables(results: dict[str, Any]) -> str:
    """All four tables, each with its heading line."""
    blocks = [
        ["FLOPs per window (1 FLOP = one multiply or one add; effective = no taps on padding)"],
        flops_table(results),
        [f"Float32 GEMM peak ({results['device']})"],
        peak_table(results),
        ["Achieved"],
        achieved_table(results),
        profile_table(results),
    ]
    return "\n\n".join("\n".join(block) for block in blocks if block)


def bench_rows(results: dict[str, Any]) -> list[tuple[str, str, str]]:
    """The roofline's rows of `python -m bench`'s table (figure, value, vs)."""
    rows = []
    for name, row in results["models"].items():
        rows.append(
            (
                f"10. FLOPs per window, {name}",
                f"{_m(row['flops_nominal'])} M nominal, {_m(row['flops_effective'])} M effective",
                f"paddle.flops x 2: {_m(2 * row['paddle_flops_macs'])} M"
                if row["paddle_flops_macs"]
                else "paddle.flops n/a",
            )
        )
    best_peak = max(results["peaks"], key=lambda p: p["gflops"])
    rows.append(
        (
            "10. float32 GEMM peak (GFLOP/s)",
            f"{results['peak_gflops']:,.0f} at {results['threads']} threads",
            f"best: {best_peak['label']} {best_peak['gflops']:,.0f} "
            f"({best_peak['threads']} thread{'s' if best_peak['threads'] != 1 else ''})",
        )
    )
    for key, row in results["achieved"].items():
        best = str(row["best_batch"])
        share = row.get("fraction_of_peak_effective", {}).get(best)
        rows.append(
            (
                f"10. achieved, {key} (windows/s at best batch)",
                f"{_rate(row['best_windows_per_s'])} at batch {best}",
                f"{share:.0%} of peak (effective FLOPs)" if share is not None else "n/a",
            )
        )
    found = results.get("profile")
    if found:
        top = max(found["groups"], key=lambda g: g["share"])
        rows.append(
            (
                f"10. profile, {found['model']}/{found['runtime']} batch {found['batch']}",
                f"{top['name']} {top['share']:.0%} of operator time",
                top["bound"],
            )
        )
    return rows
