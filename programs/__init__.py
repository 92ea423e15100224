"""The programs the `local.Command`s run on the workstation, as ordinary modules.

Each program module has a `Params` TypedDict and `main(params) -> str`; `runtime` and `talosctl`
are what they share; `build` makes a program and its parameters into the one text a Command runs
(`python3 -c <text>`). Standard library only: the workstation's python3 runs them without this
project on its path.
"""
