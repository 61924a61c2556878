"""Data volumes: block devices that hold modules' data paths (keybuzz.yaml `volumes`), never reformatted."""
