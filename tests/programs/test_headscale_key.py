"""The key program's decisions, on what the Headscale 0.28 CLI lists
(juanfont/headscale@v0.28.0: hscontrol/types/preauth_key.go, api_key.go `Proto`;
gen/go/headscale/v1/preauthkey.pb.go: `used` and `expiration` omitted when empty)."""

from __future__ import annotations

from typing import Any, cast

from components.remote_access import keys
from programs import headscale_key
from programs.build import parameters

DAY = 86400
NOW = 1_800_000_000
ROUTER = keys.KeyRequest(kind="preauthkey", expiration="1h", user="admin", tags=("tag:r",))
API = keys.KeyRequest(kind="apikey", expiration="90d")
TARGET = keys.HeadscaleTarget("headscale", "deployment/headscale", "headscale")


def params_of(request: keys.KeyRequest) -> headscale_key.Params:
    return cast(headscale_key.Params, parameters(keys.mint_script(request, TARGET)))


def test_a_key_is_found_by_its_listed_form() -> None:
    listed = headscale_key.listed_form(params_of(ROUTER), "hskey-auth-abcdefabcdef-SECRETPART")
    assert listed == "hskey-auth-abcdefabcdef-***"
    api = headscale_key.listed_form(params_of(API), "hskey-api-0123456789ab-SECRET")
    assert api == "hskey-api-0123456789ab-***"


def test_expiry_is_rfc3339_or_never() -> None:
    assert headscale_key.expiry_text({"expiration": {"seconds": 0}}) == "1970-01-01T00:00:00Z"
    assert headscale_key.expiry_text({"id": 1}) == "never"


def test_the_owner_is_found_by_name() -> None:
    users: list[dict[str, Any]] = [{"id": 3, "name": "someone"}, {"id": "4", "name": "admin"}]
    assert headscale_key.user_id(users, "admin") == 4
    assert headscale_key.user_id(users, "nobody") is None


def test_what_needs_renewal() -> None:
    def entry(expires: int, *, used: bool = False) -> dict[str, object]:
        found: dict[str, object] = {"id": 1, "expiration": {"seconds": expires}}
        if used:
            found["used"] = True
        return found

    renew = headscale_key.needs_renewal
    assert renew(None, "apikey", NOW, 30 * DAY), "unknown to Headscale"
    assert renew(entry(NOW + DAY), "apikey", NOW, 30 * DAY), "within the renewal window"
    assert not renew(entry(NOW + 80 * DAY), "apikey", NOW, 30 * DAY)
    assert renew(entry(NOW + DAY, used=True), "preauthkey", NOW, 600), "a used single-use key"
    assert not renew(entry(NOW + DAY), "preauthkey", NOW, 600)
    assert not renew({"id": 1}, "apikey", NOW, 30 * DAY), "a key that never expires"


def test_a_renewal_generation_depends_on_the_held_key_only() -> None:
    first = headscale_key.renewal_generation("hskey-api-abcdefabcdef-***")
    assert first == headscale_key.renewal_generation("hskey-api-abcdefabcdef-***")
    assert first != headscale_key.renewal_generation("hskey-api-000000000000-***")
    assert first.startswith("renew-")
    assert len(first) == len("renew-") + 16
