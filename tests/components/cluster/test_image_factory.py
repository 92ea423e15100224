"""The Image Factory schematic: its canonical form and id against upstream's, the URLs against the
provider's shapes, and what a stack registers with and without extensions."""

from __future__ import annotations

from typing import Any
from unittest import mock

import pytest
import yaml

from components.cluster import image_factory
from components.cluster.image_factory import BootMedia, schematic_id, schematic_yaml
from config.loader import ConfigError, validate_config
from config.model import ImageFactory
from homelab import fakes
from homelab import render as offline_render
from homelab.engine import Render, RenderError
from tests.contracts import patch_documents, v1alpha1_part
from tests.harness import homelab_render, render_stack, stack_raw_config, with_changes

SCHEMATIC = "talos:imageFactory/schematic:Schematic"
APPLY = "talos:machine/configurationApply:ConfigurationApply"
EXTENSIONS = ["siderolabs/qemu-guest-agent", "siderolabs/intel-ucode"]


def custom_render(factory: dict[str, Any]) -> Render:
    cluster = with_changes(stack_raw_config(), {"cluster.imageFactory": factory})["cluster"]
    return render_stack(overrides={"cluster": cluster})


# --- the id -------------------------------------------------------------------------------------


def test_the_empty_and_kernel_argument_schematics_have_upstreams_ids() -> None:
    """siderolabs/image-factory@v1.5.0:pkg/schematic/schematic_test.go `TestID`: the empty
    schematic is 376567988ad3…, and ExtraKernelArgs ["noapic", "nolapic"] is 9cba8e32753f…
    (the id is the SHA-256 of go-yaml's Marshal, schematic.go `ID`)."""
    assert schematic_id(schematic_yaml(ImageFactory())) == (
        "376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba"
    )
    args = ImageFactory(extra_kernel_args=["noapic", "nolapic"])
    assert schematic_id(schematic_yaml(args)) == (
        "9cba8e32753f91a16c1837ab8abf356af021706ef284aef07380780177d9a06c"
    )


def test_an_extension_schematic_has_the_id_the_factory_publishes_for_it() -> None:
    """The factory's id for `siderolabs/qemu-guest-agent` alone is ce4c980550dd…, the id its UI
    hands out for that extension and the one published ISO links name
    (https://factory.talos.dev/?extensions=siderolabs%2Fqemu-guest-agent&platform=metal)."""
    agent = ImageFactory(system_extensions=["siderolabs/qemu-guest-agent"])
    assert schematic_id(schematic_yaml(agent)) == (
        "ce4c980550dd2ab1b17bbf2b08801c7eb59418eafe8f279833297925d67c7515"
    )


def test_the_schematic_reads_back_as_the_factorys_fields() -> None:
    """Field names of image-factory@v1.5.0:pkg/schematic/schematic.go (`customization`,
    `extraKernelArgs`, `systemExtensions.officialExtensions`), which it decodes with
    KnownFields(true): an unknown key would be refused."""
    factory = ImageFactory(system_extensions=EXTENSIONS, extra_kernel_args=["net.ifnames=0"])
    document = yaml.safe_load(schematic_yaml(factory))
    assert document == {
        "customization": {
            "extraKernelArgs": ["net.ifnames=0"],
            "systemExtensions": {"officialExtensions": sorted(EXTENSIONS)},
        }
    }


def test_extension_order_does_not_matter_but_kernel_argument_order_does() -> None:
    forward = ImageFactory(system_extensions=EXTENSIONS)
    backward = ImageFactory(system_extensions=list(reversed(EXTENSIONS)))
    assert schematic_yaml(forward) == schematic_yaml(backward)
    args = ImageFactory(extra_kernel_args=["a=1", "b=2"])
    swapped = ImageFactory(extra_kernel_args=["b=2", "a=1"])
    assert schematic_yaml(args) != schematic_yaml(swapped)


def test_a_factory_id_other_than_ours_stops_the_run() -> None:
    assert image_factory.checked_schematic_id("abc", "abc") == "abc"
    assert image_factory.checked_schematic_id("abc", None) == "abc"
    with pytest.raises(ValueError, match="Image Factory named the schematic"):
        image_factory.checked_schematic_id("abc", "def")


# --- URLs ---------------------------------------------------------------------------------------


def test_urls_have_the_providers_metal_shapes() -> None:
    """terraform-provider-talos@v0.11.0:pkg/talos/talos_image_factory_urls_data_source.go `Read`,
    platform "metal": installer `<host>/metal-installer/<id>:<version>`, ISO
    `<factory>/image/<id>/<version>/metal-<arch>.iso` (siderolabs/talos@v1.13.9
    pkg/machinery/platforms/platforms.go `ISOPath`), PXE `<scheme>://pxe.<host>/pxe/<id>/<version>/
    metal-<arch>` (`PXEScriptPath`)."""
    media = BootMedia("v1.13.9", schematic_yaml(ImageFactory(system_extensions=EXTENSIONS)))
    sid = media.schematic_id
    assert media.installer_image == f"factory.talos.dev/metal-installer/{sid}:v1.13.9"
    assert media.iso_url == f"https://factory.talos.dev/image/{sid}/v1.13.9/metal-amd64.iso"
    assert media.pxe_url == f"https://pxe.factory.talos.dev/pxe/{sid}/v1.13.9/metal-amd64"


# --- the stack ----------------------------------------------------------------------------------


def test_without_extensions_nothing_changes_for_an_existing_stack() -> None:
    """No Schematic is registered and the installer stays the vanilla image the nodes were
    installed from (config/pins.py), so neither the node configs nor the ISO output change."""
    render = homelab_render()
    assert render.by_type(SCHEMATIC) == []
    assert render.outputs["talosInstallerImage"] == "ghcr.io/siderolabs/installer:v1.13.9"
    assert render.outputs["talosSchematicId"] == image_factory.EMPTY_SCHEMATIC_ID
    for apply in render.by_type(APPLY):
        assert apply.dependencies == () or all(SCHEMATIC not in urn for urn in apply.dependencies)


def test_extensions_register_a_schematic_that_every_node_waits_for() -> None:
    render = custom_render({"systemExtensions": EXTENSIONS, "extraKernelArgs": ["net.ifnames=0"]})
    schematic = render.one(SCHEMATIC)
    expected = ImageFactory(system_extensions=EXTENSIONS, extra_kernel_args=["net.ifnames=0"])
    assert schematic.input("schematic") == schematic_yaml(expected)
    sid = schematic_id(schematic_yaml(expected))
    installer = f"factory.talos.dev/metal-installer/{sid}:v1.13.9"
    for apply in render.by_type(APPLY):
        assert schematic.urn in apply.dependencies
        install = v1alpha1_part(patch_documents(apply))["machine"]["install"]
        assert install["image"] == installer
    assert render.outputs["talosInstallerImage"] == installer
    assert render.outputs["talosSchematicId"] == sid
    assert sid in render.outputs["talosBootIsoUrl"]
    assert sid in render.outputs["talosBootPxeUrl"]
    # No preview-time factory call: the URLs are computed, never fetched.
    assert not [i for i in render.invokes if i.token.startswith("talos:imageFactory/")]


def test_the_render_shows_the_boot_media_and_what_a_schematic_change_does() -> None:
    render = custom_render({"systemExtensions": EXTENSIONS})
    summary = offline_render.summary_markdown(render)
    section = summary[summary.index("## Boot media") :]
    assert render.outputs["talosBootIsoUrl"] in section
    assert render.outputs["talosInstallerImage"] in section
    assert "one at a time" in section


@pytest.mark.parametrize(
    ("factory", "key"),
    [
        ({"systemExtensions": ["intel-ucode"]}, "cluster.imageFactory.systemExtensions[0]"),
        (
            {"systemExtensions": ["Siderolabs/Intel-Ucode"]},
            "cluster.imageFactory.systemExtensions[0]",
        ),
        ({"extraKernelArgs": ["a b"]}, "cluster.imageFactory.extraKernelArgs[0]"),
        ({"extraKernelArgs": ["on"]}, "cluster.imageFactory.extraKernelArgs[0]"),
        ({"extensions": ["siderolabs/intel-ucode"]}, "cluster.imageFactory.extensions"),
    ],
)
def test_a_bad_entry_is_one_line_naming_its_key(factory: dict[str, Any], key: str) -> None:
    raw = with_changes(stack_raw_config(), {"cluster.imageFactory": factory})
    with pytest.raises(ConfigError) as failure:
        validate_config(raw)
    lines = [line for line in str(failure.value).splitlines() if f"homelab:{key}" in line]
    assert len(lines) == 1, str(failure.value)


def test_an_up_whose_factory_names_the_schematic_differently_fails() -> None:
    """The provider stores the id the factory returns (terraform-provider-talos@v0.11.0:
    pkg/talos/talos_image_factory_schematic_resource.go `Create`: config.ID = schematicID); if
    that ever differed from ours, every URL and the installer would name another image."""
    real = fakes.resource_id

    def other_id(type_token: str, name: str, inputs: dict[str, Any]) -> str:
        return "0" * 64 if type_token == SCHEMATIC else real(type_token, name, inputs)

    with (
        mock.patch.object(fakes, "resource_id", other_id),
        pytest.raises(RenderError, match="Image Factory named the schematic 0000"),
    ):
        custom_render({"systemExtensions": EXTENSIONS})
