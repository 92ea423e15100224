"""The homelab's Pulumi components, one per piece of the request path."""
