"""Typer command layer: parses options, calls one library function, prints via console."""
