#!/usr/bin/env python3
"""Fits the rational that `vnormal_cdf` (Sources/CLIPKernels/KernelBodies.h) evaluates:
Φ(x) − ½ ≈ x·P(x²)/Q(x²) on [0, 5.5], P and Q of degree 5, Q(0) = 1, by weighted linear least
squares (Loeffler's iteration, dividing by the previous Q) and then Lawson reweighting toward the
minimax error. The weight is x, so the error bounded is that of Φ itself (absolute), which is what
GELU = x·Φ(x) needs. Prints the coefficients as the kernel spells them and the float64 error.
(The kernel's constants came from this fit with scipy's erf; with math.erf, as here, two of the
eleven come out one float ulp apart — Q's s⁵ and s³ terms — which changes nothing measurable.)
Needs numpy (the reference venv has it): tools/reference/.venv/bin/python tools/kernels/fit_normal_cdf.py
"""
import math
import numpy as np

RANGE, P_DEGREE, Q_DEGREE = 5.5, 5, 5

x = np.unique(np.concatenate([RANGE * (1 - np.cos(np.linspace(0, np.pi / 2, 6000))), np.linspace(0, RANGE, 6000)]))[1:]
s = x * x
target = np.array([0.5 * math.erf(v / math.sqrt(2)) for v in x]) / x      # (Φ(x) − ½)/x
q_previous, lawson = np.ones_like(s), np.ones_like(s)
for iteration in range(60):
    columns = [s ** i for i in range(P_DEGREE + 1)] + [-target * s ** j for j in range(1, Q_DEGREE + 1)]
    weight = x * lawson / q_previous
    coef, *_ = np.linalg.lstsq(np.stack(columns, 1) * weight[:, None], target * weight, rcond=None)
    p, q = coef[:P_DEGREE + 1], np.concatenate([[1.0], coef[P_DEGREE + 1:]])
    q_previous = np.polyval(q[::-1], s)
    error = x * (target - np.polyval(p[::-1], s) / q_previous)
    if iteration > 10:
        lawson = lawson * np.sqrt(np.abs(error) / np.abs(error).max()) + 1e-12
        lawson /= lawson.max()

print(f"max |Φ error| on [0, {RANGE}] in float64: {np.abs(error).max():.3g}")
print("P (s⁵ first):", ", ".join(f"{v:.9e}f" for v in p[::-1]))
print("Q (s⁵ first):", ", ".join(f"{v:.9e}f" for v in q[::-1]))
