"""Compiled kernels (Cython). Import them through kinefuse._native, which fails loudly if they are missing."""
