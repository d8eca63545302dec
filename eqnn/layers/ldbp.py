"""The layers of learned digital back-propagation (LDBP, :mod:`eqnn.models.ldbp`) and their cost.

Every layer maps a field ``(T, 4)`` = ``[Re A_x, Im A_x, Re A_y, Im A_y]`` per sample (the two polarizations of a
dual-polarization field at ``sps`` samples per symbol) to another, shorter one ("valid" filtering: an output exists
only where the filter sees its whole input):

- :class:`ComplexFIR` (``taps`` N = 2M + 1 complex taps ``w_k = a_k + j b_k``, ``stride`` s): the same FIR on both
  polarizations, ``y[n] = sum_{k=0}^{N-1} w_k A[n s + k]``, output length ``floor((T - N) / s) + 1``; output ``n``
  is centred on input sample ``n s + M``, and the frequency response (for ``A[t] = exp(j w t)``, ``w`` in rad per
  sample) is ``H(w) = sum_k w_k exp(j w (k - M))``. ``domain``: "time" (the sum above, a convolution), "frequency"
  (the same output by overlap-save: the input cut into blocks of ``F`` samples overlapping by ``N - 1``, each
  transformed by a radix-2 FFT of size ``F``, multiplied by the FFT of the reversed taps, transformed back, its last
  ``F - N + 1`` samples kept; then every ``s``-th output), or "auto" (whichever costs fewer real multiplications per
  kept output: ``4 N`` in time, ``s 4 F (log2 F + 1) / (F - N + 1)`` in frequency). ``F`` is the cheapest power of
  two for ``N`` taps (:func:`eqnn.complexity.dsp.optimal_fft_size`, as DBP's and CDC's filters are costed).
- :class:`NonlinearPhase` (``scale`` theta, optional real power filter ``g`` of ``power_taps`` Q = 2R + 1 taps):
  ``P[t] = |A_x[t]|^2 + |A_y[t]|^2``, ``phi[n] = theta sum_{m=0}^{Q-1} g_m P[n + m]``, both polarizations of sample
  ``n + R`` rotated by ``exp(j phi[n])``; output length ``T - Q + 1`` (without a filter, ``g = [1]``).
- :class:`SelectPolarizations`: keeps the ``[Re, Im]`` columns of the given polarizations (free).

Cost (the rules of :mod:`eqnn.complexity`, counted on the actual weights, per inference over the fixed input of the
costed model; :func:`eqnn.complexity.model_complexity`):

- ComplexFIR in the time domain, per polarization: each input sample component (Re, Im) is multiplied once by each
  distinct non-zero magnitude among the real and imaginary parts ``|a_k|, |b_k|`` of the taps that reach it (a
  negated value reuses the product, negated for free; pruned taps and zero parts cost nothing); an unpruned complex
  tap thus costs 4 real multiplications per output sample. Each output component sums ``nnz(a) + nnz(b)`` terms.
- ComplexFIR in the frequency domain, per polarization and block of ``F`` samples (``ceil((T - N + 1) / (F - N +
  1))`` blocks, the last partly used): two FFTs of ``F/2 log2 F`` radix-2 butterflies, each one complex
  multiplication by its twiddle factor (4 real multiplications, 2 additions) and two complex additions (4 real
  additions), and ``F`` complex multiplications by the filter's spectrum (its ``1/F`` folded in): ``4 F (log2 F +
  1)`` real multiplications and ``6 F log2 F + 2 F`` additions per block, whatever the values of the taps (pruned
  or shared taps save nothing here; trivial twiddles are counted as DBP's and CDC's are,
  :mod:`eqnn.complexity.dsp`).
- NonlinearPhase: the power, 4 variable products and 3 additions per input sample; the phase, per power sample one
  product by each distinct non-zero magnitude among the folded constants ``|theta g_m|`` of the taps reaching it
  (``theta`` folded into the filter: no filter = 1 product per sample), ``nnz - 1`` additions per output; ``exp(j
  phi)`` by a cos/sin look-up (no multiplication, as DBP's count); the rotation of both polarizations, 8 variable
  products and 4 additions per output sample. This is DBP's nonlinear step (13 multiplications per dual-polarization
  sample without a filter, :func:`eqnn.complexity.dbp_complexity`). A step whose constants are all zero is the
  identity and costs nothing.

The counting reference (``reference``) performs each layer one real operation at a time with the same sharing.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import tf_keras as keras

from ..complexity.counting import ceil_log2, input_shape, ref_sum
from .registry import LayerType, register_layer_type

__all__ = ["DOMAINS", "filter_fft_size", "ComplexFIR", "NonlinearPhase", "SelectPolarizations", "complex_fir_numpy",
           "nonlinear_phase_numpy"]


def _centre_tap(n: int) -> np.ndarray:
    kernel = np.zeros((n, 2), np.float32)
    kernel[(n - 1) // 2, 0] = 1.0
    return kernel


DOMAINS = ("time", "frequency", "auto")


def filter_fft_size(taps: int, stride: int, domain: str) -> int:
    """FFT size of a :class:`ComplexFIR` of ``taps`` taps and ``stride`` applied in ``domain`` (module docstring):
    0 for the time domain, else the cheapest power of two (:func:`eqnn.complexity.dsp.optimal_fft_size`)."""
    from ..complexity.dsp import optimal_fft_size, overlap_save_rmps_per_sample

    if domain not in DOMAINS:
        raise ValueError(f"domain = {domain!r}: allowed {', '.join(DOMAINS)}")
    if domain == "time":
        return 0
    size = optimal_fft_size(taps)
    if domain == "auto" and stride * overlap_save_rmps_per_sample(size, taps) >= 4 * taps:
        return 0
    return size


class ComplexFIR(keras.layers.Layer):
    """A complex FIR of ``taps`` taps applied to both polarizations of a ``(batch, T, 4)`` field (module docstring),
    in the time domain or by overlap-save in the frequency domain (``domain``; the output is the same).

    Weights: ``kernel`` float32 ``(taps, 2)`` = ``[Re w_k, Im w_k]`` (initialized to the identity, a unit centre tap;
    the model family sets the DBP taps). ``fft_size``: 0 (time domain) or the overlap-save FFT size.
    """

    def __init__(self, taps: int, stride: int = 1, domain: str = "time", **kwargs):
        super().__init__(**kwargs)
        self.taps, self.stride, self.domain = int(taps), int(stride), str(domain)
        self.fft_size = filter_fft_size(self.taps, self.stride, self.domain)

    def build(self, input_shape):
        self.kernel = self.add_weight(name="kernel", shape=(self.taps, 2), dtype="float32",
                                      initializer=keras.initializers.Constant(_centre_tap(self.taps)), trainable=True)
        super().build(input_shape)

    def call(self, x):
        if self.fft_size:
            return self._overlap_save(x)
        a, b = self.kernel[:, 0], self.kernel[:, 1]
        k = tf.stack([tf.stack([a, b], axis=-1), tf.stack([-b, a], axis=-1)], axis=1)  # (N, in [re, im], out)
        shape = tf.shape(x)
        rows = tf.reshape(tf.transpose(tf.reshape(x, (shape[0], shape[1], 2, 2)), (0, 2, 1, 3)),
                          (shape[0] * 2, shape[1], 2))
        y = tf.nn.conv1d(rows, k, stride=self.stride, padding="VALID")
        n_out = tf.shape(y)[1]
        return tf.reshape(tf.transpose(tf.reshape(y, (shape[0], 2, n_out, 2)), (0, 2, 1, 3)), (shape[0], n_out, 4))

    def _overlap_save(self, x):
        n, f = self.taps, self.fft_size
        hop = f - n + 1
        shape = tf.shape(x)
        z = tf.transpose(tf.complex(x[..., 0::2], x[..., 1::2]), (0, 2, 1))  # (B, 2 pols, T)
        n_full = shape[1] - n + 1
        blocks = (n_full + hop - 1) // hop
        z = tf.pad(z, [[0, 0], [0, 0], [0, (blocks - 1) * hop + f - shape[1]]])
        frames = tf.signal.frame(z, f, hop)  # (B, 2, blocks, F)
        reversed_taps = tf.complex(self.kernel[::-1, 0], self.kernel[::-1, 1])
        spectrum = tf.signal.fft(tf.pad(reversed_taps, [[0, f - n]]))
        y = tf.signal.ifft(tf.signal.fft(frames) * spectrum)[..., n - 1:]  # (B, 2, blocks, hop): valid outputs
        y = tf.reshape(y, (shape[0], 2, blocks * hop))[:, :, :n_full:self.stride]
        y = tf.transpose(y, (0, 2, 1))  # (B, n_out, 2)
        n_out = tf.shape(y)[1]
        return tf.reshape(tf.stack([tf.math.real(y), tf.math.imag(y)], axis=-1), (shape[0], n_out, 4))

    def compute_output_shape(self, input_shape):
        t = input_shape[1]
        return (input_shape[0], None if t is None else (t - self.taps) // self.stride + 1, 4)

    def get_config(self):
        return {**super().get_config(), "taps": self.taps, "stride": self.stride, "domain": self.domain}


class NonlinearPhase(keras.layers.Layer):
    """The nonlinear step of LDBP on a ``(batch, T, 4)`` field (module docstring).

    Weights: ``scale`` (theta, a scalar; 0 at creation) and, with ``power_taps > 1``, ``power_filter`` float32
    ``(power_taps,)`` (a unit centre tap at creation).
    """

    def __init__(self, power_taps: int = 1, **kwargs):
        super().__init__(**kwargs)
        self.power_taps = int(power_taps)

    def build(self, input_shape):
        self.scale = self.add_weight(name="scale", shape=(), dtype="float32", initializer="zeros", trainable=True)
        self.power_filter = None
        if self.power_taps > 1:
            g = np.zeros(self.power_taps, np.float32)
            g[(self.power_taps - 1) // 2] = 1.0
            self.power_filter = self.add_weight(name="power_filter", shape=(self.power_taps,), dtype="float32",
                                                initializer=keras.initializers.Constant(g), trainable=True)
        super().build(input_shape)

    def call(self, x):
        power = tf.reduce_sum(tf.square(x), axis=-1)
        if self.power_filter is not None:
            r = (self.power_taps - 1) // 2
            power = tf.nn.conv1d(power[..., None], self.power_filter[:, None, None], stride=1, padding="VALID")[..., 0]
            x = x[:, r:tf.shape(x)[1] - r]
        phase = self.scale * power
        c, s = tf.cos(phase), tf.sin(phase)
        xr, xi, yr, yi = tf.unstack(x, axis=-1)
        return tf.stack([xr * c - xi * s, xr * s + xi * c, yr * c - yi * s, yr * s + yi * c], axis=-1)

    def compute_output_shape(self, input_shape):
        t = input_shape[1]
        return (input_shape[0], None if t is None else t - self.power_taps + 1, 4)

    def get_config(self):
        return {**super().get_config(), "power_taps": self.power_taps}

    def folded(self) -> np.ndarray:
        """The constants ``theta g_m`` actually multiplied, float64 (power_taps,)."""
        theta = float(self.scale.numpy())
        g = np.ones(1) if self.power_filter is None else self.power_filter.numpy().astype(np.float64)
        return theta * g


class SelectPolarizations(keras.layers.Layer):
    """``(batch, T, 4) -> (batch, T, 2 len(polarizations))``: the ``[Re, Im]`` of the kept polarizations (0 = x)."""

    def __init__(self, polarizations=(0,), **kwargs):
        super().__init__(**kwargs)
        self.polarizations = tuple(int(p) for p in polarizations)

    def call(self, x):
        return tf.gather(x, [c for p in self.polarizations for c in (2 * p, 2 * p + 1)], axis=-1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[1], 2 * len(self.polarizations))

    def get_config(self):
        return {**super().get_config(), "polarizations": list(self.polarizations)}


# ------------------------------------------------------------------------------------------- NumPy forms (float64)


def complex_fir_numpy(field: np.ndarray, taps: np.ndarray, stride: int = 1) -> np.ndarray:
    """:class:`ComplexFIR` in NumPy: ``field`` complex (2, T), ``taps`` complex (N,) -> complex (2, T_out)."""
    n = len(taps)
    n_out = (field.shape[-1] - n) // stride + 1
    out = np.zeros((field.shape[0], n_out), np.complex128)
    for k, w in enumerate(taps):
        out += w * field[:, k:k + (n_out - 1) * stride + 1:stride]
    return out


def nonlinear_phase_numpy(field: np.ndarray, folded: np.ndarray) -> np.ndarray:
    """:class:`NonlinearPhase` in NumPy with the folded constants ``theta g`` (Q,): complex (2, T) -> (2, T - Q + 1)."""
    q = len(folded)
    power = np.sum(np.abs(field) ** 2, axis=0)
    n_out = field.shape[-1] - q + 1
    phase = sum(folded[m] * power[m:m + n_out] for m in range(q))
    r = (q - 1) // 2
    return field[:, r:r + n_out] * np.exp(1j * phase)


# ------------------------------------------------------------------------------------------------------- cost


def _reach(position: int, n_taps: int, stride: int, n_out: int) -> range:
    """Taps ``k`` whose product with input sample ``position`` some output uses (valid filtering)."""
    lo = max(0, position - (n_out - 1) * stride)
    hi = min(n_taps - 1, position)
    first = lo + ((position - lo) % stride)
    return range(first, hi + 1, stride)


def _shared_products(values: np.ndarray, digits: np.ndarray, length: int, stride: int, n_out: int
                     ) -> tuple[int, list]:
    """Per input sample of ``length``, the distinct non-zero magnitudes among ``values[k]`` (an array per tap: the
    constants tap ``k`` multiplies by) of the taps reaching it: (products, CSD digit counts of each product)."""
    n_taps = len(values)
    cache: dict = {}
    mults, dig = 0, []
    for p in range(length):
        reach = _reach(p, n_taps, stride, n_out)
        key = (reach.start, reach.stop)
        if key not in cache:
            vals = np.concatenate([values[k] for k in reach]) if len(reach) else np.zeros(0)
            ks = np.concatenate([digits[k] for k in reach]) if len(reach) else np.zeros(0, np.int64)
            mags = np.abs(vals)
            nz = mags != 0
            _, first = np.unique(mags[nz], return_index=True)
            cache[key] = (len(first), ks[nz][first])
        count, d = cache[key]
        mults += count
        dig.append(d)
    return mults, dig


def _blocks(length: int, taps: int, fft_size: int) -> int:
    """Overlap-save blocks of ``fft_size`` samples for the ``length - taps + 1`` valid outputs."""
    return -(-(length - taps + 1) // (fft_size - taps + 1))


def _twiddles(fft_size: int) -> np.ndarray:
    """The twiddle factor of every butterfly of a radix-2 FFT of ``fft_size``, in the order of :func:`_counted_fft`."""
    out, m = [], 2
    while m <= fft_size:
        w = np.exp(-2j * np.pi * np.arange(m // 2) / m)
        out.append(np.tile(w, fft_size // m))
        m *= 2
    return np.concatenate(out)


def _spectrum(kernel: np.ndarray, fft_size: int) -> np.ndarray:
    """The FFT of the reversed taps zero-padded to ``fft_size``, with the inverse FFT's ``1/F`` folded in."""
    taps = kernel[::-1, 0].astype(np.float64) + 1j * kernel[::-1, 1].astype(np.float64)
    return np.fft.fft(taps, fft_size) / fft_size


def _fir_tally_frequency(t, layer, kernel: np.ndarray, length: int) -> None:
    f = layer.fft_size
    times = 2 * _blocks(length, kernel.shape[0], f)  # blocks x 2 polarizations
    lg = int(round(np.log2(f)))
    twiddle_parts = np.abs(np.stack([_twiddles(f).real, _twiddles(f).imag], axis=-1))  # (F/2 log2 F, 2)
    spectrum = _spectrum(kernel, f)
    spectrum_parts = np.abs(np.stack([spectrum.real, spectrum.imag], axis=-1))
    # each complex product: its constant's |Re| and |Im| twice each; two FFTs share the twiddles' digits
    digits = np.concatenate([np.repeat(t.digits(twiddle_parts).ravel(), 2)] * 2
                            + [np.repeat(t.digits(spectrum_parts).ravel(), 2)])
    t.const_products(4 * f * (lg + 1), digits, times)
    t.adds(times * 2 * f * (lg + 1), t.bw + t.ba + 1)  # inside the complex products
    t.adds(times * 4 * f * lg, t.ba + lg)  # butterflies


def _fir_tally(t, layer) -> tuple:
    length = int(input_shape(layer)[1])
    kernel = layer.kernel.numpy().astype(np.float64)  # (N, 2)
    if layer.fft_size:
        _fir_tally_frequency(t, layer, kernel, length)
        return (kernel,)
    n, s = kernel.shape[0], layer.stride
    n_out = (length - n) // s + 1
    csd = t.digits(kernel)
    mults, digits = _shared_products(kernel, csd, length, s, n_out)
    # 2 polarizations x 2 components (Re, Im) of every input sample, each with the same products
    t.const_products(4 * mults, np.concatenate(digits * 4) if digits else np.zeros(0, np.int64))
    terms = int(np.count_nonzero(kernel))
    if terms > 1:
        t.adds(4 * n_out * (terms - 1), t.bw + t.ba + ceil_log2(terms))
    return (kernel,)


def _counted_product(counter, a: complex, b: complex) -> complex:
    """``a b`` in 4 real multiplications and 2 additions."""
    return complex(counter.add(counter.mul(a.real, b.real), -counter.mul(a.imag, b.imag)),
                   counter.add(counter.mul(a.real, b.imag), counter.mul(a.imag, b.real)))


def _counted_fft(counter, values: list, inverse: bool) -> list:
    """Iterative radix-2 decimation-in-time FFT (unnormalized; ``inverse``: conjugate twiddles), every butterfly one
    counted complex product by its twiddle and two counted complex additions."""
    f = len(values)
    bits = f.bit_length() - 1
    a = [values[int(format(i, f"0{bits}b")[::-1], 2)] for i in range(f)] if bits else list(values)
    twiddles = iter(_twiddles(f))
    m = 2
    while m <= f:
        for start in range(0, f, m):
            for j in range(m // 2):
                w = next(twiddles)
                w = w.conjugate() if inverse else w
                u, v = a[start + j], _counted_product(counter, w, a[start + j + m // 2])
                a[start + j] = complex(counter.add(u.real, v.real), counter.add(u.imag, v.imag))
                a[start + j + m // 2] = complex(counter.add(u.real, -v.real), counter.add(u.imag, -v.imag))
        m *= 2
    return a


def _fir_reference_frequency(counter, layer, kernel: np.ndarray, x: np.ndarray) -> np.ndarray:
    n, f, s = kernel.shape[0], layer.fft_size, layer.stride
    hop, n_full = f - n + 1, x.shape[0] - n + 1
    blocks = _blocks(x.shape[0], n, f)
    spectrum = [complex(v) for v in _spectrum(kernel, f)]  # computed once per filter, offline
    out = np.zeros(((n_full - 1) // s + 1, 4))
    for pol in range(2):
        z = list(x[:, 2 * pol] + 1j * x[:, 2 * pol + 1]) + [0j] * ((blocks - 1) * hop + f - x.shape[0])
        full = []
        for b in range(blocks):
            spec = _counted_fft(counter, z[b * hop:b * hop + f], inverse=False)
            spec = [_counted_product(counter, h, v) for h, v in zip(spectrum, spec)]
            full.extend(_counted_fft(counter, spec, inverse=True)[n - 1:])
        kept = np.asarray(full[:n_full:s])
        out[:, 2 * pol], out[:, 2 * pol + 1] = kept.real, kept.imag
    return out


def _fir_reference(counter, layer, x: np.ndarray) -> np.ndarray:
    kernel = layer.kernel.numpy().astype(np.float64)
    if layer.fft_size:
        return _fir_reference_frequency(counter, layer, kernel, x)
    n, s = kernel.shape[0], layer.stride
    n_out = (x.shape[0] - n) // s + 1
    out = np.zeros((n_out, 4))
    for pol in range(2):
        xr, xi = x[:, 2 * pol], x[:, 2 * pol + 1]
        # per input sample and component: a table {|v|: x |v|} over the taps reaching it
        tables = []
        for p in range(x.shape[0]):
            row = {}
            for k in _reach(p, n, s, n_out):
                for v in kernel[k]:
                    m = abs(float(v))
                    if m != 0 and m not in row:
                        row[m] = (counter.mul(float(xr[p]), m), counter.mul(float(xi[p]), m))
            tables.append(row)

        def product(p: int, v: float, comp: int) -> float:
            value = tables[p][abs(v)][comp]
            return value if v > 0 else -value

        for o in range(n_out):
            re_terms, im_terms = [], []
            for k in range(n):
                p = o * s + k
                a, b = float(kernel[k, 0]), float(kernel[k, 1])
                if a != 0:
                    re_terms.append(product(p, a, 0))
                    im_terms.append(product(p, a, 1))
                if b != 0:
                    re_terms.append(-product(p, b, 1))
                    im_terms.append(product(p, b, 0))
            out[o, 2 * pol] = ref_sum(counter, re_terms)
            out[o, 2 * pol + 1] = ref_sum(counter, im_terms)
    return out


def _nl_tally(t, layer) -> tuple:
    length = int(input_shape(layer)[1])
    c = layer.folded()
    q = len(c)
    n_out = length - q + 1
    if not np.any(c):
        return (c,)
    csd = t.digits(c)
    t.var_products(4 * length)  # |A_x|^2 + |A_y|^2
    t.adds(3 * length, 2 * t.ba + 2)
    mults, digits = _shared_products(c[:, None], csd[:, None], length, 1, n_out)
    t.const_products(mults, np.concatenate(digits) if digits else np.zeros(0, np.int64))
    terms = int(np.count_nonzero(c))
    if terms > 1:
        t.adds(n_out * (terms - 1), t.bw + t.ba + ceil_log2(terms))
    t.var_products(8 * n_out)  # two complex rotations
    t.adds(4 * n_out, 2 * t.ba + 1)
    return (c,)


def _nl_reference(counter, layer, x: np.ndarray) -> np.ndarray:
    c = layer.folded()
    q = len(c)
    n_out = x.shape[0] - q + 1
    r = (q - 1) // 2
    if not np.any(c):
        return x[r:r + n_out].copy()
    power = []
    for p in range(x.shape[0]):
        sq = [counter.mul(float(v), float(v)) for v in x[p]]
        power.append(ref_sum(counter, sq))
    tables = []
    for p in range(x.shape[0]):
        row = {}
        for k in _reach(p, q, 1, n_out):
            m = abs(float(c[k]))
            if m != 0 and m not in row:
                row[m] = counter.mul(power[p], m)
        tables.append(row)
    out = np.zeros((n_out, 4))
    for o in range(n_out):
        terms = [tables[o + k][abs(float(c[k]))] * (1 if c[k] > 0 else -1) for k in range(q) if c[k] != 0]
        phase = ref_sum(counter, terms)
        cos, sin = np.cos(phase), np.sin(phase)  # look-up table: no multiplication
        for pol in range(2):
            re, im = float(x[o + r, 2 * pol]), float(x[o + r, 2 * pol + 1])
            out[o, 2 * pol] = counter.add(counter.mul(re, cos), -counter.mul(im, sin))
            out[o, 2 * pol + 1] = counter.add(counter.mul(re, sin), counter.mul(im, cos))
    return out


def _select_reference(counter, layer, x: np.ndarray) -> np.ndarray:
    return x[:, [c for p in layer.polarizations for c in (2 * p, 2 * p + 1)]]


COMPLEX_FIR = register_layer_type(LayerType(
    name="ComplexFIR", matches=lambda layer: type(layer) is ComplexFIR, tally=_fir_tally, reference=_fir_reference))
NONLINEAR_PHASE = register_layer_type(LayerType(
    name="NonlinearPhase", matches=lambda layer: type(layer) is NonlinearPhase, tally=_nl_tally,
    reference=_nl_reference, weight_names=("scale", "power_filter")))
SELECT_POLARIZATIONS = register_layer_type(LayerType(
    name="SelectPolarizations", matches=lambda layer: type(layer) is SelectPolarizations,
    tally=lambda t, layer: (), reference=_select_reference, free_names=("SelectPolarizations",)))
