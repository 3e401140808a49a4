"""``kustomize build``, for the features deploy/k8s uses and no others.

Resources (files and folders with a ``kustomization.yaml``, recursively), ``namespace``,
``images`` and ``patches`` given by path as strategic merge patches: maps merge key by key,
lists of named maps (containers, env, volumes...) merge by ``name``, other lists are
replaced, and ``$patch: delete`` removes the object. A kustomization that uses anything else
is refused, so this never quietly builds something the real tool would not; where
``kubectl`` is installed, a test compares the two.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

KUSTOMIZATION = "kustomization.yaml"
SUPPORTED = frozenset({"apiVersion", "kind", "resources", "namespace", "images", "patches"})
CLUSTER_SCOPED = frozenset({"Namespace", "ClusterRole", "ClusterRoleBinding"})

Object = dict[str, Any]


class Unsupported(AssertionError):
    """The kustomization uses a feature this builder does not have."""


def load_documents(path: Path) -> list[Object]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


def kustomization(folder: Path) -> Object:
    [document] = load_documents(folder / KUSTOMIZATION)
    extra = set(document) - SUPPORTED
    if extra:
        raise Unsupported(f"{folder / KUSTOMIZATION}: {sorted(extra)} not supported here")
    return document


def identity(obj: Object) -> tuple[str, str, str]:
    return (obj["apiVersion"], obj["kind"], obj["metadata"]["name"])


def build(folder: Path) -> list[Object]:
    """The objects ``kustomize build folder`` makes, in the order of their resources."""
    spec = kustomization(folder)
    objects: list[Object] = []
    for entry in spec.get("resources", []):
        path = (folder / entry).resolve()
        objects.extend(build(path) if path.is_dir() else load_documents(path))
    for patch in spec.get("patches", []):
        if set(patch) != {"path"}:
            raise Unsupported(f"{folder}: only patches by path are supported, not {patch}")
        for document in load_documents(folder / patch["path"]):
            objects = _patch(objects, document, folder / patch["path"])
    for image in spec.get("images", []):
        for obj in objects:
            _set_image(obj, image)
    if "namespace" in spec:
        for obj in objects:
            if obj["kind"] not in CLUSTER_SCOPED:
                obj["metadata"]["namespace"] = spec["namespace"]
    return objects


def _patch(objects: list[Object], patch: Object, source: Path) -> list[Object]:
    matches = [i for i, obj in enumerate(objects) if identity(obj) == identity(patch)]
    if len(matches) != 1:
        raise AssertionError(f"{source}: patches {identity(patch)}, found {len(matches)} times")
    [index] = matches
    if patch.get("$patch") == "delete":
        return objects[:index] + objects[index + 1 :]
    patched = merge(objects[index], patch)
    return [*objects[:index], patched, *objects[index + 1 :]]


def merge(base: Any, patch: Any) -> Any:
    """A strategic merge patch of ``base`` by ``patch`` (see the module's docstring)."""
    if isinstance(base, dict) and isinstance(patch, dict):
        merged = copy.deepcopy(base)
        for key, value in patch.items():
            if key.startswith("$"):
                raise Unsupported(f"directive {key} is not supported inside an object")
            merged[key] = merge(base[key], value) if key in base else copy.deepcopy(value)
        return merged
    if isinstance(base, list) and isinstance(patch, list) and _named(base) and _named(patch):
        merged_list = copy.deepcopy(base)
        for item in patch:
            names = [entry["name"] for entry in merged_list]
            if item["name"] in names:
                at = names.index(item["name"])
                merged_list[at] = merge(merged_list[at], item)
            else:
                merged_list.append(copy.deepcopy(item))
        return merged_list
    return copy.deepcopy(patch)


def _named(items: list[Any]) -> bool:
    return bool(items) and all(isinstance(i, dict) and "name" in i for i in items)


def _set_image(obj: Object, image: Object) -> None:
    spec = obj.get("spec", {})
    pod = spec.get("template", {}).get("spec", {})
    for container in pod.get("containers", []) + pod.get("initContainers", []):
        name, _, tag = container["image"].partition(":")
        if name == image["name"]:
            name = image.get("newName", name)
            tag = image.get("newTag", tag)
            container["image"] = f"{name}:{tag}" if tag else name
