"""torch's CPU random stream in NumPy: what `torch.manual_seed(K)` and then `torch.rand`, `torch.randn`,
`torch.nn.Linear(...)` and `torch.linspace` give, bit for bit, without torch.

    g = Generator(1)                    # torch.manual_seed(1)
    g.rand(100, 1); g.randn(1, 20)      # torch.rand(100, 1); torch.randn(1, 20): float32, torch's order
    weight, bias = g.linear(20, 1)      # torch.nn.Linear(20, 1)'s initial weight (1, 20) and bias (1,)
    notebook_draws(1)                   # the notebook's x, y and Net(1, 20, 1) weights, in the port's layout

Float32 only (the notebook's dtype; float64 draws take other paths in torch and are not reproduced). Checked against
torch 2.13.0 (CPU) on x86-64 CPUs with AVX2 or AVX-512, the kernels torch picks on every CPU this project runs on
(tests/test_torch_rng.py); README "torch's seeds, without torch" says what differs elsewhere. How torch draws (read
from aten/src/ATen/core/DistributionsHelper.h, TransformationHelper.h, native/cpu/DistributionTemplates.h,
avx_mathfun.h and RangeFactoriesKernel.cpp, and measured):
- The generator is MT19937 seeded with the seed's low 32 bits the standard way (init_genrand): seeds K and K + 2**32
  give the same stream. NumPy's MT19937 bit generator, given that state, yields the same 32-bit words.
- A float32 uniform on [a, b) takes one word w: x = (w & (2**24 - 1)) * 2**-24, then fma(x, b - a, a) in float32 (the
  AVX2 and AVX-512 builds fuse x * (b - a) + a into one multiply-add). rand is a = 0, b = 1; nn.Linear's init is
  weight then bias, each U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
- randn of fewer than 16 values: per value, Box-Muller in float64 from two 53-bit uniforms (two words each), rounded
  to float32; the sine half is kept for the next such value, across calls, until the next manual_seed.
- randn of 16 or more: first one float32 uniform per value, then Box-Muller over blocks of 16 (u1 = 1 - u[0:8],
  u2 = u[8:16]) in float32 with the Cephes-style log and sincos of avx_mathfun.h; when the size is not a multiple of
  16, 16 fresh uniforms recompute the last 16 values.
"""

import math

import numpy as np

MAX_SEED = 2**64 - 1  # torch.manual_seed takes 0 ... 2**64 - 1 (negative seeds are mapped to 2**64 + seed)
VALIDATION_RUNS = 6  # the notebook's validation cell ran six times before its printed table (docs/numerics.md)
NOTEBOOK_SEED, NOTEBOOK_POINTS, NOTEBOOK_NOISE, NOTEBOOK_HIDDEN = 1, 100, 0.2, 20

_F32 = np.float32
_MT_WORDS = 624  # MT19937's state


def _init_genrand(seed32: int) -> np.ndarray:
    """MT19937's standard seeding (Matsumoto and Nishimura's init_genrand), as torch's at::mt19937 does it."""
    key = np.empty(_MT_WORDS, np.uint32)
    s = key[0] = seed32
    for i in range(1, _MT_WORDS):
        s = (1812433253 * (s ^ (s >> 30)) + i) & 0xFFFFFFFF
        key[i] = s
    return key


def _fma32(a, b, c) -> np.ndarray:
    """float32 fused multiply-add, round(a * b + c) once, as the FMA instructions torch's x86 kernels use.

    a * b is exact in float64 (24 + 24 bits); the float64 sum is made round-to-odd (its error from TwoSum decides the
    last bit), and a round-to-odd value with 53 >= 24 + 2 bits rounds to float32 as the exact sum would.
    """
    a, b, c = (np.asarray(v, _F32).astype(np.float64) for v in (a, b, c))
    product = a * b
    total = product + c
    virtual = total - product
    error = (product - (total - virtual)) + (c - virtual)  # TwoSum: total + error == product + c exactly
    even = (total.view(np.int64) & 1) == 0
    nudge = (error != 0) & even  # inexact and even: the odd neighbour on the side of the exact sum
    total = np.where(nudge, np.nextafter(total, np.where(error > 0, np.inf, -np.inf)), total)
    return total.astype(_F32)


# avx_mathfun.h's constants (Cephes), as float32.
_SQRTHF = _F32(0.707106781186547524)
_LOG_P = [_F32(c) for c in (7.0376836292e-2, -1.1514610310e-1, 1.1676998740e-1, -1.2420140846e-1,
                             1.4249322787e-1, -1.6668057665e-1, 2.0000714765e-1, -2.4999993993e-1, 3.3333331174e-1)]
_LOG_Q1, _LOG_Q2 = _F32(-2.12194440e-4), _F32(0.693359375)
_FOPI = _F32(1.27323954473516)  # 4 / pi
_MINUS_DP = [_F32(-0.78515625), _F32(-2.4187564849853515625e-4), _F32(-3.77489497744594108e-8)]
_SINCOF = [_F32(c) for c in (-1.9515295891e-4, 8.3321608736e-3, -1.6666654611e-1)]
_COSCOF = [_F32(c) for c in (2.443315711809948e-5, -1.388731625493765e-3, 4.166664568298827e-2)]
_TWO_PI = _F32(2.0 * math.pi)  # _mm256_set1_ps(2.0f * c10::pi<double>)


def _log_ps(x: np.ndarray) -> np.ndarray:
    """log256_ps for x in (0, 1]: the exponent and a degree-9 polynomial of the mantissa, with the multiply-adds that
    GCC fuses in torch's AVX2 build. Where it had a choice (y * z + e * q1 here, y * z - z / 2 in _sincos_ps), fusing
    the other product differed from torch at 388 to 1,951 of 2**21 values (seeds 0 and 1); this choice at none."""
    bits = np.maximum(x, _F32(np.finfo(_F32).tiny)).view(np.int32)
    e = ((bits >> 23) - 0x7F).astype(_F32) + _F32(1)
    m = ((bits & ~0x7F800000) | _F32(0.5).view(np.int32)).view(_F32)  # mantissa in [0.5, 1)
    small = m < _SQRTHF  # then log(m) = log(2m) - log 2, with 2m - 1 computed as (m - 1) + m
    x = (m - _F32(1)) + np.where(small, m, _F32(0))
    e = e - np.where(small, _F32(1), _F32(0))
    z = x * x
    y = np.full_like(x, _LOG_P[0])
    for p in _LOG_P[1:]:
        y = _fma32(y, x, p)
    y = _fma32(y * x, z, e * _LOG_Q1)
    y = y - z * _F32(0.5)
    return _fma32(e, _LOG_Q2, x + y)


def _sincos_ps(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """sincos256_ps: reduce by multiples of pi/4 in three parts, then Cephes' sine and cosine polynomials."""
    negative = np.signbit(x)
    x = np.abs(x)
    j = (x * _FOPI).astype(np.int32)  # truncation, as _mm256_cvttps_epi32
    j = (j + 1) & ~1
    y = j.astype(_F32)
    for dp in _MINUS_DP:  # x - y * pi/4, pi/4 in three pieces
        x = _fma32(y, dp, x)
    sin_negative = negative ^ ((j & 4) != 0)
    cos_negative = (~(j - 2) & 4) != 0
    sine_polynomial = (j & 2) == 0
    z = x * x
    c = _fma32(_COSCOF[0], z, _COSCOF[1])
    c = _fma32(c, z, _COSCOF[2])
    c = _fma32(c * z, z, -(z * _F32(0.5))) + _F32(1)
    s = _fma32(_SINCOF[0], z, _SINCOF[1])
    s = _fma32(s, z, _SINCOF[2])
    s = _fma32(s * z, x, x)
    sine, cosine = np.where(sine_polynomial, s, c), np.where(sine_polynomial, c, s)
    return np.where(sin_negative, -sine, sine), np.where(cos_negative, -cosine, cosine)


def _box_muller_16(u: np.ndarray) -> np.ndarray:
    """normal_fill_16_AVX2 on blocks of 16 uniforms, shape (blocks, 16) -> (blocks, 16) normals."""
    radius = np.sqrt(_F32(-2) * _log_ps(_F32(1) - u[:, :8]))
    sine, cosine = _sincos_ps(_TWO_PI * u[:, 8:])
    # + 0: torch's fmadd(n, std = 1, mean = 0) turns a -0.0 into +0.0
    return np.concatenate([radius * cosine, radius * sine], axis=1) + _F32(0)


def _shape(shape) -> tuple[int, ...]:
    """torch's size arguments: rand(2, 3) or rand((2, 3))."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    if not all(isinstance(n, (int, np.integer)) and n >= 0 for n in shape):
        raise ValueError(f"a shape is non-negative whole numbers, not {shape!r}")
    return tuple(int(n) for n in shape)


class Generator:
    """torch's default CPU generator after torch.manual_seed(seed): each method draws what the torch call named in its
    docstring draws, and advances the stream as it does, so a sequence of calls matches the same sequence in torch.

    seed: 0 <= seed <= 2**64 - 1 (ValueError otherwise); only its low 32 bits reach MT19937, as in torch.
    """

    def __init__(self, seed: int):
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed <= MAX_SEED:
            raise ValueError(f"seed {seed!r} is not a whole number from 0 to 2**64 - 1")
        self.seed = int(seed)
        self._bits = np.random.MT19937()
        self._bits.state = {"bit_generator": "MT19937",
                            "state": {"key": _init_genrand(self.seed & 0xFFFFFFFF), "pos": _MT_WORDS}}
        self._spare_normal = None  # torch's next_double_normal_sample: randn's small path keeps a sine half here

    def random32(self, n: int) -> np.ndarray:
        """The next n raw 32-bit words (uint32): CPUGeneratorImpl::random()."""
        return self._bits.random_raw(n).astype(np.uint32)

    def _unit_float32(self, n: int) -> np.ndarray:
        return (self.random32(n) & np.uint32(0xFFFFFF)).astype(_F32) * _F32(2.0**-24)

    def _unit_float64(self) -> float:
        """uniform_real_distribution<double>(0, 1): random64() is two words, the first the high half; 53 bits."""
        high, low = (int(w) for w in self.random32(2))
        return (((high << 32) | low) & ((1 << 53) - 1)) * 2.0**-53

    def uniform(self, low: float, high: float, *shape) -> np.ndarray:
        """torch.empty(shape).uniform_(low, high) in float32: low and high rounded to float32, one word a value."""
        if not low <= high:
            raise ValueError(f"uniform needs low <= high, not {low} > {high}")
        low, high, shape = _F32(low), _F32(high), _shape(shape)
        return _fma32(self._unit_float32(math.prod(shape)), high - low, low).reshape(shape)

    def rand(self, *shape) -> np.ndarray:
        """torch.rand(*shape): float32 U[0, 1), multiples of 2**-24."""
        shape = _shape(shape)
        return self._unit_float32(math.prod(shape)).reshape(shape)

    def _normal_float64(self) -> float:
        """at::normal_distribution<double>: Box-Muller, cosine half now, sine half kept for the next call."""
        if self._spare_normal is not None:
            value, self._spare_normal = self._spare_normal, None
            return value
        u1 = self._unit_float64()
        u2 = self._unit_float64()
        radius = math.sqrt(-2.0 * math.log1p(-u2))  # Python's math is the C library's, as torch's ::log1p, ::cos
        theta = 2.0 * math.pi * u1
        self._spare_normal = radius * math.sin(theta) + 0.0
        return radius * math.cos(theta) + 0.0  # + 0.0: torch's value * std + mean, std 1, mean 0

    def randn(self, *shape) -> np.ndarray:
        """torch.randn(*shape): float32 N(0, 1). Fewer than 16 values: the float64 path; 16 or more: blocks of 16."""
        shape = _shape(shape)
        n = math.prod(shape)
        if n < 16:
            return np.array([self._normal_float64() for _ in range(n)], np.float64).astype(_F32).reshape(shape)
        u = self._unit_float32(n)
        full = n // 16 * 16
        out = np.empty(n, _F32)
        out[:full] = _box_muller_16(u[:full].reshape(-1, 16)).ravel()
        if n % 16:  # torch draws 16 fresh uniforms and recomputes the last 16 values from them
            out[n - 16:] = _box_muller_16(self._unit_float32(16).reshape(1, 16)).ravel()
        return out.reshape(shape)

    def linear(self, in_features: int, out_features: int) -> tuple[np.ndarray, np.ndarray]:
        """torch.nn.Linear(in_features, out_features)'s initial (weight (out, in), bias (out,)), float32.

        weight: kaiming_uniform_(a=sqrt(5)), its bound computed in Python floats as torch.nn.init computes it (which
        is 1/sqrt(in_features) up to float64 rounding); bias: U(-1/sqrt(in_features), 1/sqrt(in_features)).
        """
        gain = math.sqrt(2.0 / (1 + math.sqrt(5) ** 2))  # calculate_gain("leaky_relu", sqrt(5))
        bound = math.sqrt(3.0) * (gain / math.sqrt(in_features))
        weight = self.uniform(-bound, bound, out_features, in_features)
        bias_bound = 1 / math.sqrt(in_features)
        return weight, self.uniform(-bias_bound, bias_bound, out_features)


def linspace(start: float, end: float, steps: int) -> np.ndarray:
    """torch.linspace(start, end, steps) in float32 (CPU): the first half start + step * i and the second half
    end - step * (steps - 1 - i), each one fused multiply-add, step = (end - start) / (steps - 1) in float32."""
    if steps < 0:
        raise ValueError(f"steps must be non-negative, not {steps}")
    start, end = _F32(start), _F32(end)
    if steps <= 1:
        return np.full(steps, start, _F32)
    step = (end - start) / _F32(steps - 1)
    i = np.arange(steps)
    half = steps // 2
    return np.concatenate([_fma32(step, i[:half].astype(_F32), start),
                           _fma32(-step, (steps - 1 - i[half:]).astype(_F32), end)])


def _data_cell(g: Generator, points: int, noise: float):
    """x = torch.unsqueeze(torch.linspace(-1, 1, points), dim=1); y = x.pow(2) + noise * torch.rand(x.size())."""
    x = linspace(-1.0, 1.0, points)[:, None]
    return x, x * x + _F32(noise) * g.rand(points, 1)


def _net(g: Generator, hidden: int) -> dict[str, np.ndarray]:
    """Net(1, hidden, 1): linear1 then linear2, each weight then bias; in the port's layout (x @ w1 + b1)."""
    w1, b1 = g.linear(1, hidden)
    w2, b2 = g.linear(hidden, 1)
    return {"w1": np.ascontiguousarray(w1.T), "b1": b1, "w2": np.ascontiguousarray(w2.T), "b2": b2}


def notebook_draws(seed: int = NOTEBOOK_SEED, hidden: int = NOTEBOOK_HIDDEN, points: int = NOTEBOOK_POINTS,
                   noise: float = NOTEBOOK_NOISE) -> dict:
    """What the notebook's first cells give after torch.manual_seed(seed): its data, then Net(1, hidden, 1).

    Returns {"x": (points, 1), "y": (points, 1), "params": {"w1": (1, H), "b1": (H,), "w2": (H, 1), "b2": (1,)}},
    float32. seed=1 with the defaults is the notebook's own run (data.notebook_data).
    """
    g = Generator(seed)
    x, y = _data_cell(g, points, noise)
    return {"x": x, "y": y, "params": _net(g, hidden)}


def validation_draw(seed: int = NOTEBOOK_SEED, hidden: int = NOTEBOOK_HIDDEN, points: int = NOTEBOOK_POINTS,
                    runs: int = VALIDATION_RUNS) -> dict[str, np.ndarray]:
    """The validation cell's weights on its `runs`-th run after torch.manual_seed(seed), the data cell and one Net:
    each run draws randn(1, H), randn(H), randn(H, 1), randn(1). The defaults give the weights behind the notebook's
    printed gradient table (data.notebook_validation_params). Returns {"w1", "b1", "w2", "b2"}, float32."""
    if runs < 1:
        raise ValueError(f"runs must be at least 1, not {runs}")
    g = Generator(seed)
    _data_cell(g, points, 0.0)  # the noise scales the draw; only the number of draws matters here
    _net(g, hidden)
    for _ in range(runs):
        weights = {"w1": g.randn(1, hidden), "b1": g.randn(hidden), "w2": g.randn(hidden, 1), "b2": g.randn(1)}
    return weights


def notebook_params_for_seeds(seeds, hidden: int = NOTEBOOK_HIDDEN, points: int = NOTEBOOK_POINTS) -> dict:
    """notebook_draws(s, hidden, points)["params"] for each seed, stacked on a leading model axis: w1 (E, 1, H),
    b1 (E, H), w2 (E, H, 1), b2 (E, 1), float32 (a repeated seed is drawn once)."""
    drawn = {s: notebook_draws(s, hidden, points)["params"] for s in dict.fromkeys(int(s) for s in seeds)}
    return {name: np.stack([drawn[int(s)][name] for s in seeds]) for name in ("w1", "b1", "w2", "b2")}
