"""Versions of the packages that shaped a result, for reports and manifests."""

from __future__ import annotations

from importlib import metadata

_PACKAGES = ("edgeopt", "tensorflow", "keras", "tf-keras", "ai-edge-litert", "ai-edge-quantizer",
             "tensorflow-model-optimization", "numpy")


def package_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def versions() -> dict[str, str]:
    """The installed versions of edgeopt and the libraries it drives (absent ones left out)."""
    found = {name: package_version(name) for name in _PACKAGES}
    return {name: version for name, version in found.items() if version}
