"""Write a ready Fluent Bit deployment for Qtap: Fluent Bit configs (YAML and classic),
parsers, Lua filters, docker-compose.yaml, the rewritten Qtap config and, for S3, a lifecycle
policy. Without QTAP_YAML the bundled default (the guide's config) is used; without --out the
files go to ./qtap-fluent-deploy. Output is deterministic; --check compares instead of writing.
"""

from __future__ import annotations

import argparse
import sys
from importlib import resources
from pathlib import Path
from typing import Any

from qtap_fluent.errors import ConfigError

NAME = "gen"
HELP = "write a Fluent Bit deployment (configs, parsers, compose) from a Qtap YAML"
DEFAULT_OUT = "qtap-fluent-deploy"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from qtap_fluent.gen import spec as s

    p.add_argument("qtap_yaml", nargs="?", metavar="QTAP_YAML",
                   help="Qtap config to deploy (default: the bundled guide config)")
    p.add_argument("--out", metavar="DIR", default=DEFAULT_OUT,
                   help=f"output folder (default: ./{DEFAULT_OUT})")
    p.add_argument("--output", metavar="KIND", action="append", dest="outputs",
                   help=f"destination, repeatable: {', '.join(s.OUTPUT_KINDS)} (default: stdout)")
    p.add_argument("--bucket", help="S3/MinIO bucket (default: the Qtap s3 object store's; "
                   f"MinIO: {s.DEFAULT_MINIO_BUCKET})")
    p.add_argument("--region", help=f"AWS region (default: {s.DEFAULT_REGION})")
    p.add_argument("--endpoint", metavar="URL", help="S3-compatible endpoint for the s3 output")
    p.add_argument("--log-group", default=s.DEFAULT_LOG_GROUP,
                   help=f"CloudWatch log group (default: {s.DEFAULT_LOG_GROUP})")
    p.add_argument("--retention-days", type=int, default=s.DEFAULT_RETENTION_DAYS, metavar="N",
                   help="S3 lifecycle expiry / CloudWatch retention in days (default: 90)")
    p.add_argument("--include-domain", action="append", default=[], metavar="DOMAIN",
                   help="keep only transactions to DOMAIN (*.x for subdomains); repeatable")
    p.add_argument("--exclude-url", action="append", default=[], metavar="REGEX",
                   help="drop transactions whose URL matches REGEX (e.g. '/health$'); repeatable")
    p.add_argument("--errors-only", action="store_true",
                   help="capture only responses with status >= 400 (a Qtap rule)")
    p.add_argument("--tag", default=s.DEFAULT_TAG, help="record tag (default: docker.qtap)")
    p.add_argument("--port", type=int, default=s.DEFAULT_PORT,
                   help="forward input port (default: 24224)")
    p.add_argument("--http-port", type=int, default=2020,
                   help="Fluent Bit health/metrics port on 127.0.0.1 (default: 2020)")
    p.add_argument("--listen", default="127.0.0.1",
                   help="forward input address (default: 127.0.0.1)")
    p.add_argument("--config-format", choices=("yaml", "classic"), default="yaml",
                   help="which Fluent Bit config compose starts (both are written; default yaml)")
    p.add_argument("--agent", choices=("qtap", "qtap-fluent"), default="qtap",
                   help="compose target: capture with Qpoint's qtap as in the guide (default) or "
                   "with `qtap-fluent agent`, which forwards records itself (acks on)")
    p.add_argument("--record-shape", choices=("docker", "structured"), default=None,
                   help="records as Docker's fluentd log driver sends them (default for compose) "
                   "or as transaction maps from `qtap-fluent agent --shape structured` (no "
                   "parser filter; default for kubernetes)")
    add_lua_arguments(p)
    k = p.add_argument_group("Kubernetes target")
    k.add_argument("--target", choices=("compose", "kubernetes"), default="compose",
                   help="compose (default): docker-compose.yaml with Qtap; kubernetes: k8s/ "
                   "with a kustomization, a DaemonSet running the agent and Fluent Bit per node")
    k.add_argument("--namespace", default="qtap-fluent", help="namespace (default: qtap-fluent)")
    k.add_argument("--image", default=None,
                   help="agent image (default: qtap-fluent:<version>)")
    k.add_argument("--aggregator", action="store_true",
                   help="add a Fluent Bit aggregator Deployment + Service that alone writes to "
                   "the outputs")
    k.add_argument("--iam-role-arn", metavar="ARN",
                   help="IAM role for the service account (EKS IRSA annotation)")
    k.add_argument("--aws-secret", metavar="NAME",
                   help="Secret holding aws-access-key-id and aws-secret-access-key")
    p.add_argument("--check", action="store_true",
                   help="write nothing; print a diff and exit 1 if the files on disk differ")


def add_lua_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("Lua filters (run inside Fluent Bit)")
    g.add_argument("--redact", action="store_true",
                   help="mask secrets in headers, query parameters and JSON bodies")
    g.add_argument("--redact-header", action="append", default=[], metavar="NAME",
                   help="also mask this header (implies --redact); repeatable")
    g.add_argument("--redact-query", action="append", default=[], metavar="NAME",
                   help="also mask this query parameter (implies --redact); repeatable")
    g.add_argument("--enrich", action="store_true",
                   help="add host, path, query, status class and duration bucket")
    g.add_argument("--split-payloads", action="store_true",
                   help="one record per transaction summary plus one per body")
    g.add_argument("--drop-domain", action="append", default=[], metavar="DOMAIN",
                   help="drop transactions to DOMAIN; repeatable")
    g.add_argument("--drop-status", action="append", default=[], metavar="LOW-HIGH",
                   help="drop transactions whose status is in LOW-HIGH; repeatable")
    g.add_argument("--unwrap-qtap", action="store_true",
                   help="turn real Qtap's 'object store submission' lines into transactions")


def lua_options(args: argparse.Namespace) -> dict[str, dict[str, object]]:
    """The enabled Lua filters and their parameters, from the command line."""
    lua: dict[str, dict[str, object]] = {}
    if args.unwrap_qtap:
        lua["qtap_unwrap"] = {}
    if args.drop_domain or args.drop_status:
        from qtap_fluent.fluentbit.lua.filters import parse_range

        lua["drop"] = {"domains": list(args.drop_domain),
                       "status_ranges": [parse_range(t, key="--drop-status")
                                         for t in args.drop_status]}
    if args.redact or args.redact_header or args.redact_query:
        lua["redact"] = {"headers": list(args.redact_header),
                         "query_params": list(args.redact_query)}
    if args.enrich:
        lua["enrich"] = {}
    if args.split_payloads:
        lua["split_payloads"] = {}
    return lua


def load_qtap(path: str | None) -> tuple[str, Any]:
    """(display name, plain data) of the Qtap YAML; problems printed, errors raised."""
    import yaml

    from qtap_fluent.problems import Level
    from qtap_fluent.qtap.config import load

    if path is None:
        text = (resources.files("qtap_fluent.assets") / "qtap" / "default.yaml").read_text()
        name, display = "default.yaml", "the bundled default Qtap config"
    else:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: cannot read the Qtap YAML: {exc}") from exc
        name = display = path
    _config, problems = load(text, name)
    for problem in sorted(problems, key=lambda p: p.sort_key()):
        print(problem.format(), file=sys.stderr)
    errors = [p for p in problems if p.level >= Level.ERROR]
    if errors:
        raise ConfigError(f"{display}: {len(errors)} error(s); nothing written")
    return display, yaml.safe_load(text)


def run(args: argparse.Namespace) -> int:
    from qtap_fluent.gen import files, qtapconf
    from qtap_fluent.gen.spec import GenSpec

    display, data = load_qtap(args.qtap_yaml)
    store = qtapconf.s3_store(data)
    if store and store.clear_text_secrets:
        print(f"warning: {display}: the s3 object store has {', '.join(store.clear_text_secrets)}"
              " as type: text; it is not copied anywhere: export AWS_ACCESS_KEY_ID/"
              "AWS_SECRET_ACCESS_KEY instead", file=sys.stderr)
    spec = GenSpec(
        source_name=Path(args.qtap_yaml).name if args.qtap_yaml else "the bundled default "
        "Qtap config",
        # An s3 object store in the Qtap YAML says where the user keeps captures.
        outputs=args.outputs or (["s3"] if store and store.bucket else ["stdout"]),
        bucket=args.bucket or (store.bucket if store else None),
        region=args.region or (store.region if store else None),
        endpoint=args.endpoint or (store.endpoint if store else None),
        log_group=args.log_group,
        retention_days=args.retention_days,
        include_domains=args.include_domain,
        exclude_urls=args.exclude_url,
        errors_only=args.errors_only,
        tag=args.tag,
        port=args.port,
        http_port=args.http_port,
        listen=args.listen,
        config_format=args.config_format,
        agent=args.agent,
        record_shape=args.record_shape or ("structured" if args.target == "kubernetes"
                                           else "docker"),
        lua=lua_options(args),
    )
    errors = spec.check()
    k8s = None
    if args.target == "kubernetes":
        from qtap_fluent.gen.kubernetes import K8sSpec

        k8s = K8sSpec(namespace=args.namespace, aggregator=args.aggregator,
                      iam_role_arn=args.iam_role_arn, aws_secret=args.aws_secret)
        if args.image:
            k8s.image = args.image
        errors += k8s.check()
    if errors:
        for e in errors:
            print(f"error: {e}", file=sys.stderr)
        print("error: nothing written", file=sys.stderr)
        return 1
    rendered = files.render(spec, data) if k8s is None else files.render_kubernetes(spec, k8s,
                                                                                      data)
    out = Path(args.out)
    if args.check:
        text = files.diff(out, rendered)
        if text:
            sys.stdout.write(text)
            print(f"{out}: differs from what gen would write", file=sys.stderr)
            return 1
        print(f"{out}: up to date", file=sys.stderr)
        return 0
    for name in files.write(out, rendered):
        print(f"warning: {out / name}: written by an earlier gen, no longer generated, and "
              "edited since: left in place", file=sys.stderr)
    print(f"wrote {len(rendered)} files to {out}/ (outputs: {', '.join(spec.outputs)}); "
          f"see {out}/DEPLOY.md", file=sys.stderr)
    return 0
