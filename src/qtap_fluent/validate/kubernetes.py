"""Kubernetes manifests in a deployment: documents with positions, and the Fluent Bit files
their ConfigMaps carry.

A ConfigMap that holds a Fluent Bit config is checked like any config on disk: its ``data``
entries are written to a private temporary folder (so ``Parsers_File``, Lua ``script`` and
``@INCLUDE`` resolve between the keys of the same ConfigMap, as they do in the mounted volume),
loaded by the normal loaders, and every problem found there is mapped back to the manifest line
the text came from (``remap``).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from typing import Any

from qtap_fluent.problems import Problem
from qtap_fluent.yamlpos import YList, YMap, load_all


@dataclass(slots=True, kw_only=True)
class K8sDoc:
    """One document of a manifest file."""

    path: str
    data: YMap

    @property
    def kind(self) -> str:
        return str(self.data.get("kind", ""))

    @property
    def name(self) -> str:
        meta = self.data.get("metadata")
        return str(meta.get("name", "")) if isinstance(meta, dict) else ""


@dataclass(slots=True, kw_only=True)
class Embedded:
    """Where the text of one materialised ConfigMap key came from."""

    manifest: str
    first_line: int  #: manifest line of the text's first line
    col: int  #: column (1-based) of the text's first character, for block scalars
    exact: bool  #: False for quoted/flow strings: only the value's start is known


@dataclass(slots=True, kw_only=True)
class Manifests:
    docs: list[K8sDoc] = field(default_factory=list)
    embedded: dict[str, Embedded] = field(default_factory=dict)  #: temp path -> origin
    tmpdirs: list[str] = field(default_factory=list)

    def add(self, path: str, text: str, problems: list[Problem]) -> None:
        docs, found = load_all(text, path, typed=True)
        problems.extend(found)
        for data in docs:
            if isinstance(data, YMap):
                self.docs.append(K8sDoc(path=path, data=data))

    def of(self, kind: str) -> list[K8sDoc]:
        return [d for d in self.docs if d.kind == kind]

    def env_for(self, configmap: K8sDoc) -> dict[str, str]:
        """Variables the containers mounting ``configmap`` get (values are placeholders).

        A value from a Secret or field reference is not in the manifests; its name is what
        matters to ``${VAR}`` checks, so it is stood in for by a marker.
        """
        env: dict[str, str] = {}
        for doc in self.docs:
            pod = pod_spec(doc)
            if pod is None:
                continue
            volumes = {str(v.get("name")) for v in items(pod.get("volumes"))
                       if isinstance(v.get("configMap"), YMap)
                       and v["configMap"].get("name") == configmap.name}
            for c in items(pod.get("containers")):
                if not any(m.get("name") in volumes for m in items(c.get("volumeMounts"))):
                    continue
                for e in items(c.get("env")):
                    value = e.get("value")
                    env[str(e.get("name"))] = value if isinstance(value, str) else (
                        f"<{e.get('name')} from the pod>")
        return env

    def materialise(self, texts: dict[str, str]
                    ) -> list[tuple[str, str, dict[str, str]]]:
        """Write every ConfigMap's data to a temp folder; return ``(temp path, text, env)``."""
        out: list[tuple[str, str, dict[str, str]]] = []
        for doc in self.of("ConfigMap"):
            data = doc.data.get("data")
            if not isinstance(data, YMap) or not data:
                continue
            folder = tempfile.mkdtemp(prefix="qtap-fluent-cm-")
            self.tmpdirs.append(folder)
            lines = texts.get(doc.path, "").splitlines()
            env = self.env_for(doc)
            for key, value in data.items():
                if not isinstance(key, str) or not isinstance(value, str) or "/" in key:
                    continue
                target = os.path.join(folder, key)
                with open(target, "w", encoding="utf-8") as fh:
                    fh.write(value)
                self.embedded[target] = _origin(doc.path, data.value_mark(key), lines)
                out.append((target, value, env))
        return out

    def remap(self, problem: Problem) -> Problem:
        """``problem`` with its place moved from a temp file to the manifest line."""
        origin = self.embedded.get(os.path.abspath(problem.path)) or self.embedded.get(
            problem.path)
        if origin is None:
            return problem
        cm_key = os.path.basename(problem.path)
        if origin.exact:
            line = origin.first_line + problem.line - 1
            col = origin.col + problem.col - 1
        else:
            line, col = origin.first_line, origin.col
        message = problem.message.replace(os.path.dirname(problem.path) + os.sep, "")
        return Problem(path=origin.manifest, line=line, col=col, level=problem.level,
                       rule=problem.rule, message=f"{cm_key}: {message}")

    def cleanup(self) -> None:
        for folder in self.tmpdirs:
            shutil.rmtree(folder, ignore_errors=True)
        self.tmpdirs.clear()


def _origin(manifest: str, mark: tuple[int, int], lines: list[str]) -> Embedded:
    line, col = mark
    indicator = lines[line - 1][col - 1:col] if 0 < line <= len(lines) else ""
    if indicator in ("|", ">"):
        # Block scalar: the text starts on the next line, at that line's indentation.
        nxt = lines[line] if line < len(lines) else ""
        return Embedded(manifest=manifest, first_line=line + 1,
                        col=len(nxt) - len(nxt.lstrip(" ")) + 1, exact=indicator == "|")
    return Embedded(manifest=manifest, first_line=line, col=col, exact=False)


def pod_spec(doc: K8sDoc) -> YMap | None:
    """The pod spec of a workload (Pod, DaemonSet, Deployment, StatefulSet, Job)."""
    spec = doc.data.get("spec")
    if doc.kind == "Pod":
        return spec if isinstance(spec, YMap) else None
    template = spec.get("template") if isinstance(spec, YMap) else None
    if doc.kind == "CronJob" and isinstance(spec, YMap):
        job = spec.get("jobTemplate")
        template = job.get("spec", {}).get("template") if isinstance(job, YMap) else None
    pod = template.get("spec") if isinstance(template, YMap) else None
    return pod if isinstance(pod, YMap) else None


def items(value: Any) -> list[YMap]:
    return [v for v in value if isinstance(v, YMap)] if isinstance(value, YList) else []
