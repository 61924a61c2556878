"""keybuzz: installer and operator for the KeyBuzz high-availability platform."""

__version__ = "0.1.0"
