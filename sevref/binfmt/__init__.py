"""Binary formats: bytes in, typed values out (and back).

Everything in this package is pure: it takes and returns bytes and values, does
no I/O and imports nothing of sevref but :mod:`sevref.errors`.
"""
