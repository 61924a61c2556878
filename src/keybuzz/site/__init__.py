"""The site: what a user edits (servers.tsv, keybuzz.yaml, versions.yaml, credentials/)."""

from keybuzz.site.loader import load_site
from keybuzz.site.model import Site

__all__ = ["Site", "load_site"]
