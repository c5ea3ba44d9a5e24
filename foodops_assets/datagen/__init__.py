"""The synthetic marketplace behind ``foodops generate`` (landing files of every kind the
contracts catch). Imports nothing of the package."""
