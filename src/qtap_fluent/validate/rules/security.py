"""Security rules: secrets written in clear, a forward port open to the network, full payload
capture with nothing redacting it.

A deployment folder goes to version control (the guide's best practice 9); whatever secret it
holds is then shared with everyone who can read the repository. Captured HTTP payloads carry
credentials and personal data (best practice 10), so full capture deserves a redaction step.
"""

from __future__ import annotations

import ipaddress
import itertools
import os
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from qtap_fluent.fluentbit.config.model import FILTER, INPUT
from qtap_fluent.problems import Level, Problem
from qtap_fluent.validate import compose, links
from qtap_fluent.validate.registry import register
from qtap_fluent.yamlpos import Mark, YList, YMap

if TYPE_CHECKING:
    from qtap_fluent.validate.deployment import Deployment, QtapDoc

# AWS access key ids: 20 characters, "AKIA" (long-term) or "ASIA" (STS temporary) + 16 of
# [A-Z2-7] (IAM "Unique identifier prefixes"). Digits 0/1/8/9 are accepted too: better a false
# positive on a look-alike than a miss.
AWS_KEY_ID = re.compile(r"(?<![A-Z0-9])(?:AKIA|ASIA)[A-Z0-9]{16}(?![A-Z0-9])")
# A secret access key: 40 base64 characters written after a name that says what it is
# (AWS_SECRET_ACCESS_KEY=…, aws_secret_access_key: …, secret_key …).
AWS_SECRET = re.compile(
    r"(?i)\b(aws_?secret(?:_?access)?_?key|secret_?access_?key|secret_key)\b[\"']?"
    r"[ \t]*(?:[:=]|[ \t])[ \t]*[\"']?([A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])"
)
AWS_SECRET_VALUE = re.compile(r"[A-Za-z0-9/+]{40}")
#: compose environment names that hold a secret when given a literal value.
SECRET_NAME = re.compile(r"(?i)(secret|passw(or)?d|token|api_?key|access_?key|private_?key)")
#: Findings of one pattern reported per file at most (a generated file may repeat a key).
MAX_PER_FILE = 20
#: Loopback listen addresses (RFC 1122 §3.2.1.3: 127/8; RFC 4291: ::1) and names for them.
LOOPBACK_NAMES = {"localhost", "ip6-localhost"}


def _line_col(text: str, offset: int) -> Mark:
    line = text.count("\n", 0, offset) + 1
    start = text.rfind("\n", 0, offset) + 1
    return line, offset - start + 1


def _masked(secret: str) -> str:
    return secret[:4] + "…" if len(secret) > 8 else "…"


@register("security-aws-key", Level.ERROR, "security",
          "AWS access key id or secret access key written in clear in a file")
def check_aws_keys(deployment: Deployment) -> Iterator[Problem]:
    for source in deployment.files:
        text = source.text
        for m in itertools.islice(AWS_KEY_ID.finditer(text), MAX_PER_FILE):
            line, col = _line_col(text, m.start())
            yield Problem(path=source.path, line=line, col=col, level=Level.ERROR,
                          rule="security-aws-key",
                          message=f"AWS access key id {_masked(m.group(0))} written in clear: "
                                  "use an IAM role or pass it from the environment")
        for m in itertools.islice(AWS_SECRET.finditer(text), MAX_PER_FILE):
            line, col = _line_col(text, m.start(2))
            yield Problem(path=source.path, line=line, col=col, level=Level.ERROR,
                          rule="security-aws-key",
                          message=f"AWS secret access key ({m.group(1)}) written in clear: "
                                  "use an IAM role or pass it from the environment")


def _env_items(service: compose.Service) -> Iterator[tuple[str, str, Mark]]:
    env = service.data.get("environment")
    if isinstance(env, YMap):
        for key, value in env.items():
            if value is not None:
                yield str(key), str(value), env.value_mark(key)
    elif isinstance(env, YList):
        for i, item in enumerate(env):
            if isinstance(item, str) and "=" in item:
                key, value = item.split("=", 1)
                yield key, value, env.item_mark(i)


# Qtap ``{type: text, value: …}`` secrets are reported by the Qtap loader itself
# (``qtap-secret-in-clear``, qtap_fluent.qtap.rules); not repeated here.
@register("security-cleartext-secret", Level.WARNING, "security",
          "a compose environment variable named like a secret is given a literal value")
def check_cleartext_secrets(deployment: Deployment) -> Iterator[Problem]:
    for service in compose.all_services(deployment.compose):
        for key, value, (line, col) in _env_items(service):
            if not SECRET_NAME.search(key) or not value or "$" in value:
                continue  # empty, or ${VAR} passed through from the shell / .env file
            if AWS_KEY_ID.search(value) or AWS_SECRET_VALUE.fullmatch(value):
                continue  # security-aws-key reports it, as an error
            yield Problem(path=service.path, line=line, col=col, level=Level.WARNING,
                          rule="security-cleartext-secret",
                          message=f"service '{service.name}': {key} is given a literal value; "
                                  f"write {key}=${{{key}}} and keep the value out of the file")


def _is_loopback(listen: str) -> bool:
    host = listen.strip().strip("[]")
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _on(value: str | None) -> bool:
    return value is not None and value.strip().lower() in ("on", "true", "yes", "1")


@register("security-forward-exposed", Level.WARNING, "security",
          "forward input listens beyond loopback with neither shared_key nor tls")
def check_forward_exposed(deployment: Deployment) -> Iterator[Problem]:
    for cfg in deployment.fluentbit:
        for section in cfg.of(INPUT):
            if section.plugin != "forward" or section.get("unix_path"):
                continue
            listen = section.get("listen") or "0.0.0.0"  # in_forward default (§1.10)
            if _is_loopback(listen) or "${" in listen:
                continue
            if (section.get("shared_key") or _on(section.get("empty_shared_key"))
                    or _on(section.get("tls"))):
                continue
            entry = section.entry("listen")
            span = (entry.value_span or entry.span) if entry is not None else section.span
            yield Problem(path=span.path if span else cfg.path, line=span.line if span else 1,
                          col=span.col if span else 1, level=Level.WARNING,
                          rule="security-forward-exposed",
                          message=f"forward input listens on {listen} without shared_key or "
                                  "tls: anyone who reaches the port can inject records; listen "
                                  "on 127.0.0.1 or set Shared_Key / tls on")


def _full_levels(doc_data: Any) -> Iterator[Mark]:
    """Marks of ``level: full`` in http_capture plugins (top level and rules)."""
    stacks = doc_data.get("stacks") if isinstance(doc_data, YMap) else None
    if not isinstance(stacks, YMap):
        return
    for stack in stacks.values():
        plugins = stack.get("plugins") if isinstance(stack, YMap) else None
        for plugin in plugins if isinstance(plugins, YList) else []:
            if not isinstance(plugin, YMap) or plugin.get("type") != "http_capture":
                continue
            config = plugin.get("config")
            if not isinstance(config, YMap):
                continue
            if config.get("level") == "full":
                yield config.value_mark("level")
            rules = config.get("rules")
            for rule in rules if isinstance(rules, YList) else []:
                if isinstance(rule, YMap) and rule.get("level") == "full":
                    yield rule.value_mark("level")


def _has_key(node: Any, needle: str) -> bool:
    if isinstance(node, YMap):
        return any(needle in str(k).lower() or _has_key(v, needle) for k, v in node.items())
    if isinstance(node, YList):
        return any(_has_key(v, needle) for v in node)
    return False


def _agent_redacts(service: compose.Service) -> bool:
    # ``qtap-fluent agent`` redacts at source unless told --no-redact (cli/cmd_agent.py).
    argv = service.argv()
    runs_agent = "agent" in argv and ("qtap-fluent" in service.image
                                      or any(os.path.basename(a) == "qtap-fluent" for a in argv))
    return runs_agent and "--no-redact" not in argv


def _k8s_containers(deployment: Deployment) -> Iterator[YMap]:
    from qtap_fluent.validate.kubernetes import items, pod_spec

    for doc in deployment.manifests.docs:
        pod = pod_spec(doc)
        if pod is not None:
            yield from items(pod.get("containers"))


def _k8s_agent_redacts(container: YMap) -> bool:
    argv = [str(a) for a in (container.get("command") or []) + (container.get("args") or [])]
    image = str(container.get("image", ""))
    return "agent" in argv and "qtap-fluent" in image and "--no-redact" not in argv


def redaction_present(deployment: Deployment, doc: QtapDoc) -> bool:
    """A Lua filter whose script or function is a redact filter in the pipeline ``doc`` feeds,
    our agent redacting at source, or a redaction setting in the Qtap config."""
    if any(_agent_redacts(s) for s in compose.all_services(deployment.compose)):
        return True
    if any(_k8s_agent_redacts(c) for c in _k8s_containers(deployment)):
        return True
    if _has_key(doc.data, "redact"):
        return True
    for cfg in links.qtap_pipeline(deployment, doc):
        for section in cfg.of(FILTER):
            if section.plugin != "lua":
                continue
            names = [os.path.basename(section.get("script") or ""), section.get("call") or ""]
            if any("redact" in n.lower() for n in names):
                return True
    return False


@register("security-unredacted-capture", Level.INFO, "security",
          "Qtap captures full payloads (level: full) and nothing in the pipeline redacts them")
def check_unredacted(deployment: Deployment) -> Iterator[Problem]:
    for doc in deployment.qtap:
        if redaction_present(deployment, doc):
            continue
        for line, col in _full_levels(doc.data):
            yield Problem(path=doc.path, line=line, col=col, level=Level.INFO,
                          rule="security-unredacted-capture",
                          message="level: full ships headers and bodies (tokens, cookies, "
                                  "personal data) and no redact filter is in the pipeline; "
                                  "add a Lua redact filter or capture less")
