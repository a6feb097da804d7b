"""TensorBoard itself must read the event files Agora wrote, with every scalar where Agora put it.

usage: check_tensorboard_events.py EVENTS_DIR
EVENTS_DIR holds the event files run_log_test wrote (an interrupted run and its resumption) and expected.json:
{"files": [{"name", "resume_step", "scalars": [[tag, step, value], ...]}, ...], "written_after",
"written_before"}. Each file is read record by record with TensorBoard's loader (which verifies both CRCs of
every record), then the folder as a whole with its EventAccumulator, which merges the files as the UI does.
"""
import json
import os
import struct
import sys

from tensorboard.backend.event_processing import event_accumulator, event_file_loader
from tensorboard.compat.proto import event_pb2

failures = []


def check(condition, message):
    if not condition:
        failures.append(message)
    return condition


def float32(value):
    """What TensorBoard stores: simple_value is a float32."""
    return struct.unpack("<f", struct.pack("<f", value))[0]


def check_file(path, expected_file, written_after, written_before):
    """The file's events, in order: file_version, SessionLog START for a resumed run, then the scalars."""
    name = expected_file["name"]
    events = list(event_file_loader.LegacyEventFileLoader(path).Load())
    check(events and events[0].file_version == "brain.Event:2", f"{name}: first event is not file_version brain.Event:2")
    events = events[1:]
    resume_step = expected_file["resume_step"]
    if resume_step >= 0:
        start = events[0] if events else None
        check(start is not None and start.HasField("session_log")
              and start.session_log.status == event_pb2.SessionLog.START and start.step == resume_step + 1,
              f"{name}: resumed at {resume_step} but no SessionLog START at step {resume_step + 1}: {start}")
        events = events[1:]
    actual = []
    for event in events:
        check(written_after - 1 <= event.wall_time <= written_before + 1,
              f"{name}: wall_time {event.wall_time} outside [{written_after}, {written_before}]")
        for value in event.summary.value:
            check(value.WhichOneof("value") == "simple_value", f"{name}: {value.tag} is not a simple_value")
            actual.append([value.tag, event.step, value.simple_value])
    expected = [[tag, step, float32(value)] for tag, step, value in expected_file["scalars"]]
    if check(len(actual) == len(expected), f"{name}: {len(actual)} scalars, expected {len(expected)}"):
        for got, want in zip(actual, expected):
            check(got == want, f"{name}: read {got}, wrote {want}")
    return len(actual)


def check_merged(events_dir, files):
    """The folder as TensorBoard shows it: a resumed run's values replace the interrupted run's after its
    checkpoint (the SessionLog START purges them)."""
    merged = {}
    for expected_file in files:
        resume_step = expected_file["resume_step"]
        if resume_step >= 0:
            merged = {tag: [p for p in points if p[0] <= resume_step] for tag, points in merged.items()}
        for tag, step, value in expected_file["scalars"]:
            merged.setdefault(tag, []).append((step, float32(value)))
    accumulator = event_accumulator.EventAccumulator(events_dir, size_guidance={event_accumulator.SCALARS: 0})
    accumulator.Reload()
    tags = sorted(accumulator.Tags()["scalars"])
    check(tags == sorted(merged), f"scalar tags {tags}, expected {sorted(merged)}")
    for tag in sorted(merged):
        if tag not in tags:
            continue
        actual = [(event.step, event.value) for event in accumulator.Scalars(tag)]
        check(actual == merged[tag], f"merged {tag}: TensorBoard shows {actual}, expected {merged[tag]}")
    return sum(len(points) for points in merged.values())


def main():
    events_dir = sys.argv[1]
    with open(os.path.join(events_dir, "expected.json")) as f:
        expected = json.load(f)
    files = expected["files"]
    on_disk = sorted(n for n in os.listdir(events_dir) if n.startswith("events.out.tfevents."))
    check(on_disk == sorted(f["name"] for f in files), f"event files {on_disk}, expected {[f['name'] for f in files]}")
    check([f["name"] for f in files] == sorted(f["name"] for f in files),
          "the resumed run's file does not sort after the interrupted run's, so TensorBoard reads them out of order")
    for expected_file in files:
        count = check_file(os.path.join(events_dir, expected_file["name"]), expected_file,
                           expected["written_after"], expected["written_before"])
        print(f"{expected_file['name']}: {count} scalars")
    points = check_merged(events_dir, files)
    print(f"merged view: {points} points")
    for failure in failures:
        print(f"FAIL {failure}")
    print("ok" if not failures else f"{len(failures)} failures")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
