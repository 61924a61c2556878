from keybuzz.cli import app

app()
