"""Boot media and installer from an Image Factory schematic: system extensions, kernel arguments.

A schematic is a small YAML document; the factory names it by the SHA-256 of its canonical
serialisation (siderolabs/image-factory@v1.5.0:pkg/schematic/schematic.go `ID`: "ID matches
sha256 hash of the canonical representation of the schematic", `Marshal` = go-yaml with its
default four-space indent). So the id, and with it every URL and the installer image, is computed
here from the config, known at every preview and offline: no `imagefactory.get_urls` invoke
(it would run on every preview) and no wait for the factory's answer. The `Schematic` resource
still registers the document with the factory, which only serves images of schematics it has
been given; the nodes' applies wait for it, and its returned id is checked against ours.

URL shapes are the provider's own (terraform-provider-talos@v0.11.0:
pkg/talos/talos_image_factory_urls_data_source.go `Read`, platform "metal"): the installer is
`<factory host>/metal-installer/<id>:<version>`, the ISO `<factory>/image/<id>/<version>/
metal-<arch>.iso`, the iPXE script `https://pxe.<factory host>/pxe/<id>/<version>/metal-<arch>`
(file names: siderolabs/talos@v1.13.9:pkg/machinery/platforms/platforms.go `ISOPath`,
`PXEScriptPath`).

Without extensions or kernel arguments the schematic is the empty one and nothing is registered:
the installer stays `ghcr.io/siderolabs/installer:<version>`, the same image the empty schematic
builds, so an existing stack sees no change.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

from config import pins
from config.model import Cluster, ImageFactory

IMAGE_FACTORY_URL: Final = "https://factory.talos.dev"
# The empty schematic's id: siderolabs/talos@v1.13.9 cmd/talosctl/cmd/constants/constants.go
# `ImageFactoryEmptySchematicID`, and image-factory@v1.5.0 pkg/schematic/schematic_test.go "empty".
EMPTY_SCHEMATIC_ID: Final = "376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba"
DEFAULT_ARCH: Final = "amd64"
# What a changed schematic means for running nodes: the config's install image changes at once,
# but a running node only takes a new installer through an upgrade (the install image is read at
# install and upgrade time), which re-images the nodes one at a time (docs/operations.md).
SCHEMATIC_CHANGE_NOTE: Final = (
    "a changed schematic reaches running nodes only through the upgrade roll, which re-images "
    "them one at a time with the new installer; new nodes install it directly "
    "(docs/operations.md, Boot media)"
)


def schematic_yaml(factory: ImageFactory) -> str:
    """The schematic in the factory's canonical form, byte for byte.

    go-yaml's Marshal of `Schematic{Customization{ExtraKernelArgs, SystemExtensions}}`: fields in
    struct order, empty ones omitted (`omitempty`), four-space indent with list items indented
    under their key; an empty customization is `customization: {}`. The config restricts the
    values to plain scalars (config/model.py `_SYSTEM_EXTENSION`, `_KERNEL_ARG`), which go-yaml
    writes unquoted. Extensions are sorted (their order means nothing to the factory, and a
    reordered list must not re-image the nodes); kernel arguments keep theirs (a later one can
    override an earlier one).
    """
    if factory.is_vanilla:
        return "customization: {}\n"
    lines = ["customization:"]
    if factory.extra_kernel_args:
        lines.append("    extraKernelArgs:")
        lines += [f"        - {arg}" for arg in factory.extra_kernel_args]
    if factory.system_extensions:
        lines += ["    systemExtensions:", "        officialExtensions:"]
        lines += [f"            - {name}" for name in sorted(factory.system_extensions)]
    return "\n".join(lines) + "\n"


def schematic_id(schematic: str) -> str:
    """The factory's id of a canonical schematic document (schematic.go `ID`)."""
    return hashlib.sha256(schematic.encode()).hexdigest()


@dataclass(frozen=True)
class BootMedia:
    """What a machine boots and installs for one Talos version and schematic."""

    talos_version: str
    schematic: str
    arch: str = DEFAULT_ARCH

    @property
    def schematic_id(self) -> str:
        return schematic_id(self.schematic)

    @property
    def is_vanilla(self) -> bool:
        return self.schematic_id == EMPTY_SCHEMATIC_ID

    @property
    def installer_image(self) -> str:
        if self.is_vanilla:
            return f"{pins.TALOS_INSTALLER_IMAGE}:{self.talos_version}"
        host = urlsplit(IMAGE_FACTORY_URL).netloc
        return f"{host}/metal-installer/{self.schematic_id}:{self.talos_version}"

    @property
    def iso_url(self) -> str:
        return (
            f"{IMAGE_FACTORY_URL}/image/{self.schematic_id}/{self.talos_version}/"
            f"metal-{self.arch}.iso"
        )

    @property
    def pxe_url(self) -> str:
        parts = urlsplit(IMAGE_FACTORY_URL)
        return (
            f"{parts.scheme}://pxe.{parts.netloc}/pxe/{self.schematic_id}/{self.talos_version}/"
            f"metal-{self.arch}"
        )


def schematic_of_installer(image: str) -> str:
    """The schematic id of an installer this module names (`installer_image`); "" for the plain
    installer."""
    host = urlsplit(IMAGE_FACTORY_URL).netloc
    repository = image.rpartition(":")[0]
    if repository.startswith(f"{host}/") and "-installer/" in repository:
        return repository.rpartition("/")[2]
    return ""


def boot_media(cluster: Cluster) -> BootMedia:
    return BootMedia(cluster.talos_version, schematic_yaml(cluster.image_factory))


def checked_schematic_id(expected: str, returned: str | None) -> str:
    """The factory's id for our schematic, which must be the one the URLs were built with."""
    if returned is not None and returned != expected:
        raise ValueError(
            f"the Image Factory named the schematic {returned}, the stack computed {expected}: "
            "the boot media URLs and installer image would be wrong; please report this"
        )
    return expected
