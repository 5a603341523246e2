"""Capture HTTP transactions (live eBPF or a pcap replay) and send Qtap records to an output.

Records are exactly Qtap's http_capture records, chosen and trimmed by the Qtap YAML's policy
(tap.direction, ignore_loopback, filters, endpoints, http_capture levels and rules), with
secrets redacted at source. Counters are served on --metrics-listen and summarised on exit.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys

NAME = "agent"
HELP = "capture HTTP transactions and emit Qtap records (live or --replay FILE.pcap)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, metavar="QTAP_YAML",
                        help="the Qtap configuration (stacks, tap, filters, endpoints)")
    parser.add_argument("--replay", metavar="FILE",
                        help="read TCP streams from a .pcap/.pcapng file instead of eBPF")
    parser.add_argument("--sink", choices=("forward", "stdout", "file"), default="forward",
                        help="where records go (default: forward)")
    parser.add_argument("--forward", default="127.0.0.1:24224", metavar="HOST:PORT",
                        help="forward receiver (default: 127.0.0.1:24224)")
    parser.add_argument("--file", metavar="PATH", help="output file for --sink file")
    parser.add_argument("--tag", default="docker.qtap", help="forward tag (default: docker.qtap)")
    parser.add_argument("--shape", choices=("docker", "structured"), default="docker",
                        help="forward record shape (default: docker)")
    parser.add_argument("--metrics-listen", metavar="ADDR",
                        help="serve Prometheus counters at http://ADDR/metrics")
    parser.add_argument("--body-limit", type=int, default=2 * 1024 * 1024, metavar="BYTES",
                        help="keep at most this many bytes of each body (default: 2 MiB)")
    parser.add_argument("--log-level", default="info",
                        choices=("debug", "info", "warning", "error"),
                        help="log level on stderr (default: info; the 'capturing: ...' line "
                        "says what was attached)")
    parser.add_argument("--no-redact", action="store_true",
                        help="do not mask credentials (headers, query parameters, JSON keys)")


def run(args: argparse.Namespace) -> int:
    import logging

    from qtap_fluent.agent.metrics import MetricsServer, prometheus_text, summary_line
    from qtap_fluent.agent.outputs import OUTPUTS, OutputOptions
    from qtap_fluent.agent.procinfo import container_id
    from qtap_fluent.agent.qtapconfig import load_policy
    from qtap_fluent.agent.runner import Runner
    from qtap_fluent.agent.sources import LIVE_SOURCES, LiveOptions, ReplaySource, Source
    from qtap_fluent.agent.tracker import Limits
    from qtap_fluent.errors import UsageError
    from qtap_fluent.redact import Redactor

    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.body_limit < 0:
        raise UsageError("--body-limit must be 0 or more")
    policy, problems = load_policy(args.config, redactor=None if args.no_redact else Redactor())
    for problem in problems:
        print(problem.format(), file=sys.stderr)
    # The docker shape names the container the agent runs in, as Docker's log driver would.
    own_container = container_id(os.getpid()) or ""
    output = OUTPUTS[args.sink](OutputOptions(path=args.file or "", forward=args.forward,
                                              tag=args.tag, shape=args.shape,
                                              container_id=own_container))
    source: Source
    if args.replay:
        source = ReplaySource(args.replay)
        lookup = None
    else:
        try:
            source = LIVE_SOURCES["bpf"](LiveOptions(direction=policy.direction,
                                                     ignore_loopback=policy.ignore_loopback))
        except (ImportError, ValueError) as exc:
            raise UsageError(f"live capture is not available here ({exc}); use --replay FILE"
                             ) from None
        lookup = container_id
    runner = Runner(policy, output, limits=Limits(body_limit=args.body_limit),
                    container_lookup=lookup)
    metrics = None
    if args.metrics_listen:
        try:
            metrics = MetricsServer(args.metrics_listen, lambda: prometheus_text(
                runner.tracker.sync_counters(), len(runner.tracker.conns)))
        except (ValueError, OSError) as exc:
            raise UsageError(f"--metrics-listen {args.metrics_listen}: {exc}") from None
    output.open()
    # SIGTERM (docker stop, systemd) ends the capture like the end of a replay: open
    # connections are finished, the output is flushed and the summary printed.
    previous = signal.signal(signal.SIGTERM, lambda _sig, _frame: source.close())
    try:
        runner.run(source)
    finally:
        signal.signal(signal.SIGTERM, previous)
        source.close()
        output.close()
        if metrics is not None:
            metrics.close()
        print(f"qtap-fluent agent: {summary_line(runner.tracker.sync_counters())}",
              file=sys.stderr)
    return 0
