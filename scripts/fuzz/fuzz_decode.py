"""atheris target: the stream-entry decoders and the YAML spec loader on arbitrary bytes.

Only ``CodecError`` (decode_task, decode_completion) and ``SpecError`` (WorkflowSpec.from_yaml)
may escape; anything else is a crash atheris reports with its input.  Not run in CI and atheris
is not a project dependency (tests/faults/test_fuzz_decoders.py runs the same property under
hypothesis).  To run it::

    .venv/bin/pip install atheris        # needs clang/libFuzzer for the CPython in use
    mkdir -p /tmp/fuzz-corpus
    .venv/bin/python scripts/fuzz/fuzz_decode.py /tmp/fuzz-corpus -runs=1000000
    .venv/bin/python scripts/fuzz/fuzz_decode.py -max_total_time=600   # or ten minutes

Any libFuzzer flag works (``-jobs=2``, ``-max_len=4096``); a crash leaves ``crash-<sha>`` in
the working directory, replayed with ``python scripts/fuzz/fuzz_decode.py crash-<sha>``.
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports():
    from streamproc.errors import CodecError, SpecError
    from streamproc.spec.model import WorkflowSpec
    from streamproc.store import codec

TASK_KEYS = [b"v", b"wf", b"task", b"agent", b"att", b"in", b"deps", b"to"]
DONE_KEYS = [b"v", b"kind", b"wf", b"task", b"att", b"out", b"t0", b"t1", b"by", b"adj"]
DONE_KEYS += [b"why", b"adjin", b"retry_ms", b"give_up_ms"]


def fields(data: atheris.FuzzedDataProvider, keys: list[bytes]) -> dict[bytes, bytes]:
    """Mostly the real field names (so decoding gets past the first check), some random."""
    out: dict[bytes, bytes] = {}
    for _ in range(data.ConsumeIntInRange(0, 16)):
        if data.ConsumeBool():
            key = keys[data.ConsumeIntInRange(0, len(keys) - 1)]
        else:
            key = data.ConsumeBytes(data.ConsumeIntInRange(0, 8))
        out[key] = b"1" if data.ConsumeIntInRange(0, 3) == 0 else data.ConsumeBytes(64)
    return out


def test_one_input(raw: bytes) -> None:
    data = atheris.FuzzedDataProvider(raw)
    target = data.ConsumeIntInRange(0, 2)
    try:
        if target == 0:
            codec.decode_task(b"1-0", fields(data, TASK_KEYS), "echo")
        elif target == 1:
            codec.decode_completion(b"1-0", fields(data, DONE_KEYS))
        else:
            WorkflowSpec.from_yaml(data.ConsumeBytes(data.remaining_bytes()))
    except (CodecError, SpecError):
        pass


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
