"""Which files of a deployment belong together: the Fluent Bit configs a compose service runs,
the pipeline a Qtap config feeds.

One ``validate`` run may cover several deployments (a repository with ``staging/`` and
``prod/``), so cross-file rules must not compare a compose file with an unrelated config. The
links, strongest first: a bind mount (the compose fluent-bit service mounts the config at its
``-c`` path, the Qtap service mounts the Qtap YAML), then the same folder, then everything.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

from qtap_fluent.fluentbit.config.model import ConfigFile
from qtap_fluent.validate import compose
from qtap_fluent.validate.compose import Service

if TYPE_CHECKING:
    from qtap_fluent.validate.deployment import Deployment, QtapDoc


def _same(a: str, b: str) -> bool:
    return os.path.abspath(a) == os.path.abspath(b)


def nearby(configs: Sequence[ConfigFile], anchor: str) -> list[ConfigFile]:
    """Configs in ``anchor``'s folder; all of them when none is."""
    folder = os.path.dirname(os.path.abspath(anchor))
    near = [c for c in configs if os.path.dirname(os.path.abspath(c.path)) == folder]
    return near or list(configs)


def configs_for(deployment: Deployment, service: Service) -> list[ConfigFile]:
    """The main Fluent Bit configs a fluent-bit ``service`` runs."""
    path, _, _ = compose.config_path(service)
    source = service.target_source(path)
    if source is not None:
        mounted = [c for c in deployment.fluentbit if _same(c.path, source)]
        if mounted:
            return mounted
    return nearby(deployment.fluentbit, service.path)


def fluentbit_services(deployment: Deployment, compose_path: str) -> list[Service]:
    """The fluent-bit services of the compose file ``compose_path``."""
    return [s for s in compose.all_services(deployment.compose)
            if s.is_fluentbit and _same(s.path, compose_path)]


def pipeline(deployment: Deployment, compose_path: str) -> list[ConfigFile]:
    """The configs the compose file ``compose_path`` runs (its fluent-bit services')."""
    services = fluentbit_services(deployment, compose_path)
    if not services:
        return nearby(deployment.fluentbit, compose_path)
    out: list[ConfigFile] = []
    for s in services:
        out.extend(c for c in configs_for(deployment, s) if c not in out)
    return out


def qtap_pipeline(deployment: Deployment, doc: QtapDoc) -> list[ConfigFile]:
    """The configs the records of Qtap config ``doc`` flow through."""
    out: list[ConfigFile] = []
    for service in compose.all_services(deployment.compose):
        if any(_same(m.source, doc.path) for m in service.mounts):
            out.extend(c for c in pipeline(deployment, service.path) if c not in out)
    return out or nearby(deployment.fluentbit, doc.path)


def qtap_docs(deployment: Deployment, service: Service) -> list[QtapDoc]:
    """The Qtap configs a compose ``service`` mounts; else those beside the compose file."""
    mounted = [d for d in deployment.qtap
               if any(_same(m.source, d.path) for m in service.mounts)]
    if mounted:
        return mounted
    folder = os.path.dirname(os.path.abspath(service.path))
    near = [d for d in deployment.qtap if os.path.dirname(os.path.abspath(d.path)) == folder]
    return near or list(deployment.qtap)
