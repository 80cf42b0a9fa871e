"""Backfill replay: a time range of the input topics, relabeled by a bounded worker.

A replay is the live worker on a manual assignment of offset ranges (no group,
no commits, no changelog writes). This module turns `--from/--to` into those
ranges, names the job, keeps its resume file, and runs it:

1. parse the times (epoch ms or ISO-8601 with an offset);
2. look up offsets by Kafka record timestamp with a group-less consumer and
   resolve per partition [first record with ts >= from, first record with ts >= to);
3. derive the job id from the resolved ranges, the model and the window config,
   so the same range with the same model gives the same id and the same events;
4. run the worker; on a stop, keep per partition the offset to resume from (the
   low watermark, not the next offset: windows still filling need older samples)
   and each device's anchor, so a resumed run cuts the same windows.
"""
