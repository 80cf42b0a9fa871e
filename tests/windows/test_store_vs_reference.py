"""Property tests: WindowStore matches the list-per-device reference on random call sequences.

Every append also goes through append_runs on a second store (see harness.Pair), so
single samples, chunks and interleaved multi-sample records all exercise the runs path.
"""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.windows.harness import Pair
from windows import WindowConfig

DEVICES = ("d0", "d1", "d2", "d3", "d4")
INTERVAL_MS = 10
# Step kinds between a device's consecutive samples, weighted toward the common case.
STEPS = ("next",) * 12 + (
    "jitter",
    "leap",
    "dup",
    "back_near",
    "back_far",
    "gap",
    "gap_short",
    "move",
)
CLEAN_STEPS = ("next", "next", "next", "jitter")


@st.composite
def configs(draw) -> WindowConfig:
    """Small windows and rings, so wrap-around, forced emission and LRU all happen."""
    gap_ms = draw(st.sampled_from([35, 100, 1000]))
    reorders = [0, 0, 15, 35] + ([250, 250] if gap_ms >= 250 else [])
    return WindowConfig(
        length=draw(st.integers(1, 9)),
        hop=draw(st.integers(1, 12)),
        channels=2,
        reorder_ms=draw(st.sampled_from(reorders)),
        gap_ms=gap_ms,
        gap_policy=draw(st.sampled_from(["reset", "fill"])),
        max_fill=draw(st.integers(0, 12)),
        interval_ms=draw(st.sampled_from([None, None, 10.0, 7.5])),
        idle_ms=draw(st.sampled_from([50, 400])),
        max_devices=draw(st.integers(1, 5)),
        slack=draw(st.integers(17, 24)),
    )


class Generator:
    """Turns drawn step kinds into timestamps, values, sources and offsets per device."""

    def __init__(self, draw, config: WindowConfig) -> None:
        self.draw, self.config = draw, config
        self.clock = {d: 1_000 for d in DEVICES}
        self.source = {d: i % 2 for i, d in enumerate(DEVICES)}
        self.next_offset = {0: 0, 1: 0, 2: 0, 3: 0}
        self.rng = np.random.default_rng(draw(st.integers(0, 2**16)))

    def ts(self, device: str, clean: bool) -> int:
        step = self.draw(st.sampled_from(CLEAN_STEPS if clean else STEPS))
        if step == "move":
            self.source[device] = 3 - self.source[device] if self.source[device] >= 2 else 2
        last = self.clock[device]
        t = {
            "next": last + INTERVAL_MS,
            "move": last + INTERVAL_MS,
            "jitter": last + self.draw(st.integers(1, 25)),
            "leap": last + self.draw(st.integers(26, 34)),
            "dup": last,
            "back_near": last - self.draw(st.integers(1, 40)),
            "back_far": last - self.draw(st.integers(41, 400)),
            "gap": last + self.config.gap_ms + self.draw(st.integers(1, 200)),
            "gap_short": last + self.config.gap_ms + 1,
        }[step]
        self.clock[device] = max(last, t)
        return t

    def offset(self, source: int) -> int:
        self.next_offset[source] += 1
        return self.next_offset[source]

    def values(self, n: int) -> np.ndarray:
        return self.rng.normal(size=(n, self.config.channels)).astype(np.float32)


@st.composite
def scenarios(draw):
    config = draw(configs())
    gen = Generator(draw, config)
    ops = []
    for _ in range(draw(st.integers(1, 30))):
        kind = draw(
            st.sampled_from(
                ["bulk", "bulk", "records", "records", "chunk", "chunk", "one", "idle", "drop"]
            )
        )
        now = draw(st.sampled_from([None, None, "clock"]))
        clean = draw(st.booleans())
        now_ms = max(gen.clock.values()) if now == "clock" else None
        if kind == "bulk":
            devs = draw(
                st.lists(
                    st.sampled_from(DEVICES[: config.max_devices + 1]), min_size=1, max_size=14
                )
            )
            if len(set(devs)) > config.max_devices:
                devs = [d for d in devs if d in DEVICES[: config.max_devices]] or [DEVICES[0]]
            ts = [gen.ts(d, clean) for d in devs]
            srcs = [gen.source[d] for d in devs]
            ops.append(
                (
                    "bulk",
                    devs,
                    ts,
                    gen.values(len(devs)),
                    srcs,
                    [gen.offset(s) for s in srcs],
                    now_ms,
                )
            )
        elif kind == "records":
            # several devices' multi-sample records interleaved: runs of 1-12 samples
            devs = draw(
                st.lists(st.sampled_from(DEVICES[: config.max_devices]), min_size=1, max_size=6)
            )
            ids, ts, srcs, offs = [], [], [], []
            for d in devs:
                n = draw(st.integers(1, 12))
                ts += [gen.ts(d, clean) for _ in range(n)]
                src = gen.source[d]
                ids += [d] * n
                srcs += [src] * n
                offs += [gen.offset(src)] * n
            ops.append(("bulk", ids, ts, gen.values(len(ts)), srcs, offs, now_ms))
        elif kind == "chunk":
            d = draw(st.sampled_from(DEVICES))
            ts = [gen.ts(d, clean) for _ in range(draw(st.integers(1, 45)))]
            src = gen.source[d]
            ops.append(("chunk", d, ts, gen.values(len(ts)), src, gen.offset(src), now_ms))
        elif kind == "one":
            d = draw(st.sampled_from(DEVICES))
            t = gen.ts(d, clean)
            src = gen.source[d]
            ops.append(("one", d, t, gen.values(1)[0], src, gen.offset(src), now_ms))
        elif kind == "idle":
            ops.append(("idle", max(gen.clock.values()) + draw(st.integers(0, 2 * config.idle_ms))))
        else:
            ops.append(("drop", draw(st.sets(st.integers(0, 3), max_size=2))))
    return config, ops


def run(pair, ops) -> None:
    """Apply ops to both stores, comparing after each; ready offsets never go back per source."""
    last_ready: dict[int, int] = {}
    for op in ops:
        kind, args = op[0], op[1:]
        if kind == "idle":
            pair.evict_idle(args[0])
        elif kind == "drop":
            pair.drop_sources(args[0])
        else:
            getattr(pair, kind)(*args)
        batch = pair.assert_same()
        for source, ready in zip(
            batch.last_sources.tolist(), batch.ready_offsets.tolist(), strict=True
        ):
            assert ready >= last_ready.get(source, ready)
            last_ready[source] = ready


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_store_matches_reference_on_random_calls(scenario):
    config, ops = scenario
    pair = Pair(config)
    run(pair, ops)
