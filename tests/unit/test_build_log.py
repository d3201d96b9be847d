"""The classic builder's stream turned into steps, output lines and a failure summary."""

from __future__ import annotations

from deployctl.services.pipeline.build_log import BuildLog

STREAM = [
    {"stream": "Step 1/4 : FROM base\n"},
    {"stream": " ---> 0123456789ab\n"},
    {"stream": "Step 2/4 : COPY . /app\n ---> Using cache\n ---> 123456789abc\n"},
    {"stream": "Step 3/4 : RUN make"},          # a line split across chunks
    {"stream": "\n ---> Running in 23456789abcd\n"},
    {"stream": "compiling\nlinking\n"},
    {"stream": "Removing intermediate container 23456789abcd\n ---> 3456789abcde\n"},
    {"stream": "Step 4/4 : LABEL a=b\n ---> Using cache\n"},
    {"aux": {"ID": "sha256:" + "f" * 64}},
    {"stream": "Successfully built ffffffffffff\nSuccessfully tagged x:y\n"},
]


def feed_all(log: BuildLog, chunks):
    lines = [line for chunk in chunks for line in log.feed(chunk)]
    return lines + list(log.flush())


def test_steps_output_and_cache_hits():
    log = BuildLog()
    lines = feed_all(log, STREAM)
    assert [line.text for line in lines] == [
        "Step 1/4 : FROM base", "Step 2/4 : COPY . /app", "Step 3/4 : RUN make", "compiling", "linking",
        "Step 4/4 : LABEL a=b",
    ]
    assert [(line.step, line.steps) for line in lines][3] == (3, 4)
    assert log.image_id == "sha256:" + "f" * 64
    assert (log.cached_steps, log.step_total, log.error) == (2, 4, None)


def test_failure_keeps_the_failing_step_and_its_last_lines():
    log = BuildLog(keep=3)
    chunks = [
        {"stream": "Step 1/3 : FROM base\n"},
        {"stream": "Step 2/3 : RUN echo early\n"},
        {"stream": "early\n"},
        {"stream": "Step 3/3 : RUN ./build.sh\n"},
        {"stream": "one\ntwo\nthree\nfour\nno newline at the end"},
        {"errorDetail": {"code": 2, "message": "The command '/bin/sh -c ./build.sh' returned a non-zero code: 2"},
         "error": "The command '/bin/sh -c ./build.sh' returned a non-zero code: 2"},
    ]
    feed_all(log, chunks)
    assert log.step == "Step 3/3 : RUN ./build.sh"
    assert log.error == "The command '/bin/sh -c ./build.sh' returned a non-zero code: 2"
    assert log.failure_output() == ("three", "four", "no newline at the end")
