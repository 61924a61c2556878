"""The seed's modules, one folder each (pending ones in pending.py); keybuzz.registry lists them."""
