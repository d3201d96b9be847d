# The probe with its own HEALTHCHECK, for the tests of healthcheck.type = "docker" and the
# Swarm's docker checks (tests/integration/deploy_fixtures.build_probe_images: *_checked).
# Healthy at the first answer; unhealthy only after 3 failed probes of up to 5 s: with 2 s and
# 2 retries, a loaded machine (a python start alone can take seconds) had Swarm stop healthy
# tasks during a deploy's health wait ("Complete", a rehearsal at load 40-56).
# The check is bash's /dev/tcp, not a python: `python -c "import urllib.request..."` cost
# 130 ms of CPU per container-second at load 12 (check + runc exec), bash 68 ms. Same
# verdict: a 200 from /healthz.
ARG PROBE_IMAGE
FROM ${PROBE_IMAGE}
HEALTHCHECK --interval=1s --timeout=5s --start-period=1s --retries=3 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8000 && printf 'GET /healthz HTTP/1.0\\r\\n\\r\\n' >&3 && read -r -t 4 _ code _ <&3 && [ \"$code\" = 200 ]"]
