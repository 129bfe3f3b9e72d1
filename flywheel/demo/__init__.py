"""SIMULATION. Demo traffic, a simulated reviewer and a simulated model for `make demo`.

Nothing in this package is used on real data; it exists so a newcomer can watch the whole loop run
on a help-desk assistant that does not exist.
"""
