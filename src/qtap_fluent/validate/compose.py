"""Read the parts of a docker compose file the cross-file rules need, with positions.

Compose facts used here (compose-spec ``05-services.md``): ``volumes`` has a short syntax
``SOURCE:TARGET[:MODE]`` where a SOURCE starting with ``.``/``/``/``~`` is a bind mount (relative
to the compose file's folder) and anything else a named volume, and a long syntax
``{type, source, target}``; ``command`` is a string (split like a shell) or a list; the
``fluentd`` log driver takes ``fluentd-address`` (``[tcp://]host:port`` or ``unix://path``,
default ``localhost:24224``) and ``tag`` (default ``{{.ID}}``, Go template markers allowed).
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from qtap_fluent.yamlpos import Mark, YList, YMap

if TYPE_CHECKING:
    from qtap_fluent.validate.deployment import YamlDoc

#: Docker's fluentd log driver defaults (moby daemon/logger/fluentd/fluentd.go).
FLUENTD_DEFAULT_PORT = 24224
#: Where the official fluent/fluent-bit image reads its config when run without ``-c``.
FLUENTBIT_DEFAULT_CONFIG = "/fluent-bit/etc/fluent-bit.conf"


@dataclass(slots=True, kw_only=True)
class Mount:
    """One bind mount: host ``source`` (absolute, resolved) → container ``target``."""

    source: str
    target: str
    written: str  #: the source as written
    mark: Mark


@dataclass(slots=True, kw_only=True)
class Service:
    """One compose service with the positions of what the rules look at."""

    name: str
    data: YMap
    doc: YamlDoc
    mark: Mark
    mounts: list[Mount] = field(default_factory=list)

    @property
    def path(self) -> str:
        return self.doc.path

    def str_of(self, key: str) -> str:
        value = self.data.get(key)
        return value if isinstance(value, str) else ""

    @property
    def image(self) -> str:
        return self.str_of("image").lower()

    @property
    def logging(self) -> YMap | None:
        value = self.data.get("logging")
        return value if isinstance(value, YMap) else None

    @property
    def logging_mark(self) -> Mark:
        """Where ``logging:`` is written (the service name when it is not)."""
        return self.data.key_mark("logging") if "logging" in self.data else self.mark

    @property
    def log_driver(self) -> str:
        log = self.logging
        driver = log.get("driver") if log is not None else None
        return driver.lower() if isinstance(driver, str) else ""

    @property
    def log_options(self) -> YMap | None:
        log = self.logging
        options = log.get("options") if log is not None else None
        return options if isinstance(options, YMap) else None

    def command(self, key: str = "command") -> tuple[list[str], Mark]:
        """The command (or ``entrypoint``) as argv, and where it is written (the service when
        absent)."""
        value = self.data.get(key)
        mark = self.data.value_mark(key) if key in self.data else self.mark
        if isinstance(value, str):
            try:
                return shlex.split(value), mark
            except ValueError:
                return value.split(), mark
        if isinstance(value, list):
            return [str(v) for v in value], mark
        return [], mark

    @property
    def is_fluentbit(self) -> bool:
        argv = self.argv()
        return ("fluent-bit" in self.image or "fluentbit" in self.image
                or (bool(argv) and os.path.basename(argv[0]) == "fluent-bit"))

    def argv(self) -> list[str]:
        """``entrypoint`` followed by ``command`` (what the container runs, image defaults aside)."""
        return self.command("entrypoint")[0] + self.command()[0]

    @property
    def is_qtap(self) -> bool:
        """Qpoint's Qtap agent (not this project's ``qtap-fluent`` image)."""
        return "qtap" in self.image and "qtap-fluent" not in self.image

    def target_source(self, container_path: str) -> str | None:
        """The host file mounted at ``container_path`` (directly or via a mounted folder)."""
        want = os.path.normpath(container_path)
        for m in self.mounts:
            target = os.path.normpath(m.target)
            if want == target:
                return m.source
            if want.startswith(target.rstrip("/") + "/"):
                return os.path.join(m.source, os.path.relpath(want, target))
        return None


def _bind(doc: YamlDoc, written: str) -> str | None:
    """Absolute host path of a bind-mount source, or None for a named volume."""
    if not written.startswith((".", "/", "~")):
        return None
    if written.startswith("~"):
        return os.path.expanduser(written)
    return os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(doc.path)), written))


def _mounts(doc: YamlDoc, data: YMap) -> Iterator[Mount]:
    volumes = data.get("volumes")
    if not isinstance(volumes, YList):
        return
    for i, item in enumerate(volumes):
        mark = volumes.item_mark(i)
        if isinstance(item, str):
            parts = item.split(":")
            if len(parts) < 2:
                continue  # anonymous volume: a container path only
            written, target = parts[0], parts[1]
        elif isinstance(item, YMap):
            if item.get("type", "bind") != "bind":
                continue
            written, target = str(item.get("source", "")), str(item.get("target", ""))
        else:
            continue
        source = _bind(doc, written)
        if source is not None and target:
            yield Mount(source=source, target=target, written=written, mark=mark)


def _configs(doc: YamlDoc, data: YMap) -> Iterator[Mount]:
    """Compose ``configs:`` given to a service, as mounts (compose-spec ``08-configs.md``):
    the top-level entry's ``file`` appears at ``target`` (default ``/<name>``)."""
    top = doc.data.get("configs") if isinstance(doc.data, YMap) else None
    given = data.get("configs")
    if not isinstance(top, YMap) or not isinstance(given, YList):
        return
    for i, item in enumerate(given):
        if isinstance(item, YMap):
            name, target = str(item.get("source", "")), item.get("target")
        else:
            name, target = str(item), None
        entry = top.get(name)
        file = entry.get("file") if isinstance(entry, YMap) else None
        if not isinstance(file, str):
            continue  # ``content:``/``environment:``/external configs: no host file
        source = _bind(doc, file if file.startswith((".", "/", "~")) else "./" + file)
        if source is not None:
            yield Mount(source=source, target=str(target or f"/{name}"), written=file,
                        mark=given.item_mark(i))


def services(doc: YamlDoc) -> list[Service]:
    """The services of one compose document (none when it did not load)."""
    data = doc.data
    if not isinstance(data, YMap):
        return []
    block = data.get("services")
    if not isinstance(block, YMap):
        return []
    out = []
    for name, body in block.items():
        if isinstance(body, YMap):
            service = Service(name=str(name), data=body, doc=doc, mark=block.key_mark(name))
            service.mounts = [*_mounts(doc, body), *_configs(doc, body)]
            out.append(service)
    return out


def all_services(docs: Sequence[YamlDoc]) -> list[Service]:
    return [s for doc in docs for s in services(doc)]


_TEMPLATE = re.compile(r"\{\{.*?\}\}")


def log_tag(service: Service) -> tuple[str | None, Mark]:
    """The fluentd log driver tag of ``service`` (None when a Go template or unset)."""
    options = service.log_options
    if options is None or "tag" not in options:
        return None, service.logging_mark
    tag = options.get("tag")
    mark = options.value_mark("tag")
    if not isinstance(tag, str) or _TEMPLATE.search(tag):
        return None, mark
    return tag, mark


def fluentd_address(service: Service) -> tuple[str, str | None, int | None, Mark]:
    """``(scheme, host, port, mark)`` of the fluentd log driver address (defaults applied)."""
    options = service.log_options
    mark = service.logging_mark
    value: Any = None
    if options is not None and "fluentd-address" in options:
        value = options.get("fluentd-address")
        mark = options.value_mark("fluentd-address")
    if value is None or value == "":
        return "tcp", "localhost", FLUENTD_DEFAULT_PORT, mark
    text = str(value)
    if text.startswith("unix://"):
        return "unix", None, None, mark
    if "://" in text:
        text = text.split("://", 1)[1]
    host, sep, port = text.rpartition(":")
    if not sep:
        return "tcp", text, FLUENTD_DEFAULT_PORT, mark
    try:
        return "tcp", host.strip("[]"), int(port), mark
    except ValueError:
        return "tcp", host, None, mark


def forward_tags(docs: Sequence[YamlDoc]) -> list[str]:
    """Tags that services logging through the fluentd driver give their records."""
    tags = []
    for service in all_services(docs):
        if service.log_driver == "fluentd":
            tag, _ = log_tag(service)
            if tag is not None:
                tags.append(tag)
    return tags


def _flag(argv: Sequence[str], names: tuple[str, ...]) -> str | None:
    """The value of ``--name VALUE`` / ``--name=VALUE`` in ``argv``."""
    for i, arg in enumerate(argv):
        if arg in names and i + 1 < len(argv):
            return argv[i + 1]
        for name in names:
            if arg.startswith(name + "="):
                return arg[len(name) + 1:]
    return None


def config_path(service: Service) -> tuple[str, Mark, bool]:
    """The ``-c``/``--config`` path of a fluent-bit service: ``(path, mark, given)``."""
    for key in ("command", "entrypoint"):
        argv, mark = service.command(key)
        value = _flag(argv, ("-c", "--config"))
        if value is not None:
            return value, mark, True
    return FLUENTBIT_DEFAULT_CONFIG, service.command()[1], False


def qtap_config_path(service: Service) -> tuple[str | None, Mark]:
    """Where a Qtap service reads its config: ``--config`` or ``QPOINT_CONFIG`` (qtap.md §1)."""
    for key in ("command", "entrypoint"):
        argv, mark = service.command(key)
        value = _flag(argv, ("--config",))
        if value is not None:
            return value, mark
    env = service.data.get("environment")
    items = (list(env.items()) if isinstance(env, YMap) else
             [tuple(str(e).split("=", 1)) for e in env if "=" in str(e)]
             if isinstance(env, YList) else [])
    for key, value in items:
        if key == "QPOINT_CONFIG" and value:
            return str(value), service.data.value_mark("environment")
    return None, service.mark
