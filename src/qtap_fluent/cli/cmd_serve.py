"""Receive Fluent Bit's forward output, run Python filters and outputs, ack after durability.

Without --config, the flags describe one output that takes every tag; with --config the YAML
file gives the listener and a pipeline of filters and outputs (see qtap_fluent.serve.config),
and --output adds one more output matching every tag. Logs one line when listening; SIGTERM or
SIGINT stops accepting, flushes what outputs hold (S3 uploads open objects) and exits 0.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

NAME = "serve"
HELP = "run Python filters/outputs behind Fluent Bit's forward output (S3, CloudWatch, file, ...)"

OUTPUTS = ("s3", "cloudwatch", "file", "stdout", "forward")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="FILE", help="serve.yaml with listen, filters, outputs")
    p.add_argument("--listen", metavar="HOST:PORT",
                   help="forward listener (default 0.0.0.0:24224, or the config's)")
    p.add_argument("--output", choices=OUTPUTS, help="one output for every tag")
    p.add_argument("--bucket", help="s3: bucket")
    p.add_argument("--endpoint", metavar="URL",
                   help="s3/cloudwatch: endpoint (MinIO: path-style); forward: HOST:PORT")
    p.add_argument("--region", help="s3/cloudwatch: AWS region (default us-east-1)")
    p.add_argument("--log-group", help="cloudwatch: log group (created if missing)")
    p.add_argument("--file", metavar="PATH", help="file: JSON-lines file (rotated by size)")
    p.add_argument("--spool", metavar="DIR", help="spool folder (S3 objects before upload)")
    p.add_argument("--metrics-listen", metavar="ADDR",
                   help="serve Prometheus metrics at http://ADDR/metrics")
    p.add_argument("--log-level", default="info",
                   choices=("debug", "info", "warning", "error"), help="default info")


def flag_output(args: argparse.Namespace) -> dict[str, Any]:
    """The output section the flags describe (UsageError when a needed flag is missing)."""
    from qtap_fluent.errors import UsageError

    out: dict[str, Any] = {"match": "*"}
    kind = args.output
    if kind == "s3":
        if not args.bucket:
            raise UsageError("--output s3 needs --bucket")
        out.update(name="s3", bucket=args.bucket, region=args.region or "us-east-1")
        if args.endpoint:
            out["endpoint"] = args.endpoint
    elif kind == "cloudwatch":
        if not args.log_group:
            raise UsageError("--output cloudwatch needs --log-group")
        out.update(name="cloudwatch_logs", region=args.region or "us-east-1",
                   log_group_name=args.log_group, log_stream_prefix="serve-",
                   auto_create_group=True)
        if args.endpoint:
            out["endpoint"] = args.endpoint
    elif kind == "file":
        if not args.file:
            raise UsageError("--output file needs --file PATH")
        out.update(name="file", path=args.file)
    elif kind == "forward":
        from qtap_fluent.serve.config import parse_address

        try:
            host, port = parse_address(args.endpoint or "127.0.0.1:24224", 24224)
        except ValueError as exc:
            raise UsageError(f"--endpoint: {exc}") from None
        out.update(name="forward", host=host, port=port)
    else:
        out.update(name="stdout")
    return out


def run(args: argparse.Namespace) -> int:
    import asyncio
    import logging
    import sys

    from qtap_fluent.errors import ConfigError, UsageError
    from qtap_fluent.problems import Level
    from qtap_fluent.serve.config import (
        Section,
        ServeConfig,
        build_pipeline,
        load_config,
        parse_address,
    )
    from qtap_fluent.serve.runner import ServeApp

    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.config:
        try:
            text = Path(args.config).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"--config {args.config}: {exc}") from None
        cfg, problems = load_config(text, args.config)
        for p in problems:
            if p.level is not Level.ERROR:
                print(p.format(), file=sys.stderr)
        if cfg is None:
            raise ConfigError(f"{args.config}: not usable", list[object](problems))
    else:
        cfg = ServeConfig()
    for flag, attr, default_port in (("listen", "listen", 24224),
                                     ("metrics_listen", "metrics_listen", 2021)):
        value = getattr(args, flag)
        if value:
            try:
                setattr(cfg, attr, parse_address(value, default_port))
            except ValueError as exc:
                raise UsageError(f"--{flag.replace('_', '-')}: {exc}") from None
    if args.spool:
        cfg.spool = Path(args.spool)
    if args.output or not cfg.outputs:
        raw = flag_output(args)
        options = {k: v for k, v in raw.items() if k not in ("name", "match")}
        cfg.outputs.append(Section(kind="output", ref=raw["name"], builtin=True, match="*",
                                   match_regex=None, alias=raw["name"], on_error="pass",
                                   retry_limit=3, options=options))
    pipeline, problems = build_pipeline(cfg)
    if pipeline is None:
        raise ConfigError("cannot start serve", list[object](problems))
    app = ServeApp(cfg, pipeline)
    try:
        asyncio.run(app.run())
    except OSError as exc:
        # Typically the listen address is taken or not ours: one clear line, exit 1.
        print(f"error: serve: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0
