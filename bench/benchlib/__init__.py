"""Support code of the mailsuite benchmark runner (``bench/run.py``).

Everything here starts servers on loopback only, with temporary data, and stops them again.
"""
