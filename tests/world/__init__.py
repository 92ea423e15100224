"""One shared fake world of the CLIs the programs drive (talosctl, kubectl, headscale in its
pod), whose every behaviour cites its upstream source. See world.py (the API) and flow.py (the
`pulumi up` driver)."""
