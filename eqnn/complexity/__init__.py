"""Computational complexity of the equalizers: RMpS, BoP and NABS of NN equalizers, CDC and DBP.

This module is the project's statement of cost. It follows the metrics of Freire et al., "Reducing
Computational Complexity of Neural Networks in Optical Channel Equalization: From Concepts to
Implementation", JLT 41(14), 4557-4581, 2023 (arXiv:2208.12866), and their layer formulas of Freire et al.,
"Performance versus Complexity Study of Neural Network Equalizers in Coherent Optical Systems", JLT 39(19), 2021.
Every convention below is a choice; where it differs from the papers it says so.

Metrics
=======
- **RMpS**: real multiplications per recovered symbol.
- **BoP**: bit operations per recovered symbol (Baskin et al., "UNIQ", ACM TOCS 37, 2021, as used by Freire et al.
  2023): a multiplication of a ``b1``-bit by a ``b2``-bit operand costs ``b1*b2``; an addition that accumulates
  ``K`` terms, each a product of ``b1``- and ``b2``-bit operands, is done at the accumulator width
  ``b1 + b2 + ceil(log2 K)`` and costs that many bit operations. (Baskin et al. write ``log2`` without the
  ceiling; we round up because an accumulator has an integer number of bits.)
- **NABS**: number of additions and bit shifts per recovered symbol, when every multiplication by a *constant*
  (a trained weight, an FFT twiddle, a filter coefficient) is replaced by shifts and adds: a constant whose
  magnitude has ``k`` non-zero digits in canonical signed digit (CSD = non-adjacent form) at its bit width costs
  ``k`` shifts and ``k - 1`` additions (``2k - 1``; nothing if it quantizes to 0). A multiplication of two
  variables (e.g. the LSTM gate products) is a generic shift-and-add multiplier over the ``b_a`` bits of one
  operand: ``b_a`` shifts and ``b_a - 1`` additions (``2 b_a - 1``). Every other addition counts 1.

What a "recovered symbol" is
============================
One complex QAM symbol of one polarization. An NN equalizer maps a window of ``T = 2N + 1`` time slots with 4
features (I/Q of both polarizations) to 2 real outputs (one symbol of one polarization) or 4 (the symbols of both
polarizations): its per-window cost is divided by ``symbols_per_window = (number of real outputs) / 2`` (1 or 2;
override it with the argument of that name, e.g. 1 to get the cost per window). CDC filters each polarization
separately, so its per-sample cost of one polarization is already per symbol of that polarization; DBP processes
both polarizations together, so its cost per time slot is divided by 2. The three are thus on one scale.

Sequence (many-to-many) equalizers (:mod:`eqnn.models.sequence`) are costed on one inference block of ``B``
symbols (``model_complexity(..., time_steps=B)``: the model, built over a variable time axis, is copied onto a fixed
``(B, 4)`` input with the same weights), overlap included, and divided by the symbols the block delivers:
``symbols_per_window = (B - 2 O) * (real outputs per step) / 2``.

Neural-network layers (cost of one window, i.e. one inference)
===============================================================
A *matrix-vector product* ``y_j = sum_i x_i W_ij + b_j`` (``W`` of shape ``(n_in, n_out)``) is counted on the
ACTUAL weights:

- multiplications ``= sum_i D_i``, where ``D_i`` is the number of distinct non-zero values in row ``i`` of ``W``
  (the weights that multiply input ``x_i``): each input is multiplied once by each distinct non-zero value and the
  product is reused by every output that has that weight. Pruned (exactly zero) weights cost nothing; with
  unshared float weights ``D_i`` is the number of non-zero weights of row ``i`` (barring two float weights that
  happen to be equal, which are then legitimately shared), so a dense unpruned layer costs ``n_in n_out``
  (Freire et al.); a clustered layer with ``C`` clusters costs at most ``n_in min(C, n_out)``.
- additions: output ``j`` sums ``K_j = nnz(W[:, j]) + [b_j != 0]`` terms with ``max(K_j - 1, 0)`` additions
  (the bias is a term of the sum when the layer uses a bias and it is non-zero).
- BoP ``= mults * b_w b_a + sum_j max(K_j - 1, 0) (b_w + b_a + ceil(log2 K_j))``.
- NABS ``= sum_i sum_{distinct v in row i} (2 k(v) - 1) + additions`` with ``k(v)`` the CSD digit count of ``v``
  quantized to ``b_w`` bits (see below).

Layers:

- **Dense** ``(n_i -> n_n)``: one matrix-vector product per position (``P = 1`` for a 2-D input; a Dense applied
  to ``(T, C)`` acts on each of the ``T`` positions). Unpruned: RMpS ``= P n_i n_n`` (Freire 2021/2023).
- **LSTM** (``n_i`` inputs, ``n_h`` units, keras gate order i, f, c, o): per time step one matrix-vector product
  of ``[x_t, h_{t-1}]`` (``n_i + n_h`` inputs) with ``[W; U]`` (``4 n_h`` outputs, bias ``b``), then
  ``c_t = f c_{t-1} + i g`` (2 n_h multiplications, n_h additions) and ``h_t = o tanh(c_t)`` (n_h
  multiplications). The whole window recurrence is counted for every recovered symbol, all ``T`` steps alike
  (the zero initial state is not exploited), whether or not the layer returns sequences. Unpruned:
  RMpS ``= T (4 n_h n_i + 4 n_h^2 + 3 n_h)`` = ``T n_h (4 n_i + 4 n_h + 3)`` (the LSTM formula of Freire et
  al. 2021 and 2023 with ``n_s = T``). The 3 n_h gate products multiply two variables (BoP ``b_a^2`` each, NABS
  ``2 b_a - 1`` each); the cell update adds two ``b_a x b_a`` products (BoP ``2 b_a + 1`` each).
  A *constant gate* (gate ``k`` of unit ``u`` whose pre-activation weights, column ``k n_h + u`` of ``W`` and
  ``U``, are all zero, e.g. after the "gates" pruning of :mod:`eqnn.compression.pruning.gates`) has the value
  ``act(b)`` at every step, computed once offline. It saves: its ``n_i + n_h`` products and its additions in the
  matrix-vector product (zero weights are free, as anywhere), its activation evaluation, and the product of two
  variables in its elementwise product (``f c_{t-1}``, ``i g`` or ``o tanh(c_t)``), which becomes a product of a
  variable by the constant (still one multiplication; BoP ``b_w b_a``, NABS ``2 k - 1`` with ``k`` the CSD digits
  of the constant at ``b_w`` bits). Only where the constant is exactly 0 (the term and its addition vanish;
  ``o = 0`` also skips ``tanh(c_t)``) or exactly 1 (the other factor passes) is the product folded away, and
  ``i g`` of two constant gates is a constant. The values are those of float64 (a sigmoid is exactly 1 above
  ``b`` of about 37 and exactly 0 below about -745). A unit whose four gates are constant has data-independent
  states that could be precomputed: this is not exploited.
- **GRU** (``reset_after=True``, tf_keras's default; gate order z, r, h; bias ``(2, 3 n_h)``: input bias ``b^x`` and
  recurrent bias ``b^h``): per step the products of ``x_t`` with ``W`` and of ``h_{t-1}`` with ``U`` (per input,
  one per distinct non-zero weight of its row over all three gates); the z and r columns each sum their products of
  both and the folded constant ``b^x + b^h``; the candidate sums ``x_t W_h + b^x_h`` and ``h_{t-1} U_h + b^h_h``
  separately, then ``r * (h_{t-1} U_h + b^h_h)`` (``n_h`` variable products) is added (``n_h`` additions);
  ``h_t = z h_{t-1} + (1 - z) hh``: ``n_h`` additions for ``1 - z``, 2 ``n_h`` products, ``n_h`` additions.
  Unpruned: RMpS ``= T n_h (3 n_i + 3 n_h + 3)`` (Liu et al., Opt. Express 30(18), 2022). All ``T`` steps are
  counted as for the LSTM. ``reset_after=False`` raises :class:`ComplexityError`.
- **Bidirectional(LSTM / GRU)**: the forward and the backward RNN, each over the whole window (twice the RNN), plus
  the merge: "concat" is free, "sum" adds ``n_h`` per output position, "mul" multiplies ``n_h`` per position,
  "ave" adds and multiplies by the constant 0.5 (1 CSD digit) ``n_h`` per position.
- **Conv1D** (``kernel_size`` K, ``C_in`` channels, ``F`` filters, stride s, dilation d, padding valid / same /
  causal, ``groups = 1``): the window is zero-padded as keras does, and every one of the ``L_out`` output
  positions of the layer is computed for every symbol (the per-window convention of Freire et al. 2021, whose
  formula ``F C_in K ((T + 2 pad - d (K - 1) - 1)/s + 1)`` also counts the products with the padded zeros; we do
  the same). Products are shared per input element ``x[p, c]`` (of the padded input) over the distinct non-zero
  values ``W[k, c, f]`` of the taps ``k`` that reach it; unpruned: RMpS ``= L_out K C_in F``. Each output
  ``(o, f)`` sums ``nnz(W[:, :, f]) + [b_f != 0]`` terms.
- **Activation functions** (of Dense, Conv1D, LSTM, GRU and ``Activation`` layers): ReLU and linear cost nothing.
  Leaky ReLU (the ``LeakyReLU`` layer, slope ``alpha``, or the ``"leaky_relu"`` function, slope 0.2) costs one
  multiplication by the constant ``alpha`` per element, for every element (a data-independent count: any element
  may be negative); in BoP ``b_w b_a``, in NABS ``2 k - 1`` with ``k`` the CSD digits of
  ``round(alpha 2^(b_w - 1))``. Every evaluation of any other function (sigmoid, tanh, elu, gelu, swish, ...) is
  counted in ``activations_per_window`` and costs
  ``activation_multiplications`` real multiplications (default 0: a look-up table; the layer RMpS formulas of
  Freire et al. contain no activation term either). A non-zero value is charged as variable x variable products
  in BoP (``b_a^2``) and NABS (``2 b_a - 1``).
- **Free layers**: InputLayer, Flatten, Reshape, Permute, Dropout (and its variants), GaussianNoise,
  ActivityRegularization, and ReLU layers with ``negative_slope = threshold = 0``: no arithmetic at inference.
  Nested models are expanded. Any other layer type raises :class:`ComplexityError`; so do TFMOT wrappers (strip
  them first).

Bit widths
==========
``weight_bits`` (``b_w``) and ``activation_bits`` (``b_a``): integers in [2, 32]; ``None`` means unquantized
32-bit float, for which BoP and NABS are computed as if the operands were 32-bit fixed point (the common baseline
of the BoP literature; a float32 multiplier is not cheaper than a 32-bit integer one). For NABS every weight
tensor (kernel, recurrent kernel) is put on the symmetric two's-complement ``b_w``-bit grid of
:func:`eqnn.compress.quantize_array`: ``q = clip(round(w / s), -2^(b_w-1), 2^(b_w-1) - 1)``,
``s = max(max(W) / (2^(b_w-1) - 1), -min(W) / 2^(b_w-1))``, per tensor, or per index of the last axis when the
weights lie exactly on such per-channel grids and not on the per-tensor one; ``k(w)`` is the number of non-zero
CSD digits of ``|q|``. Weights quantized to ``b_w`` bits by that function thus give their own integers back
exactly; for any other weights the digits are those of the nearest grid point.

Power-of-two weights (``model_complexity(..., pow2_terms=m)``): the weights lie on the power-of-two grid of
:func:`eqnn.compress.quantize_array` (``grid="pow2"``: ``w = s q``, ``q`` a sum of at most ``m`` signed powers of
two); their integers are found back with :func:`~.counting.pow2_integers` instead of the uniform grid. A product of
a variable by a constant of ``k`` CSD digits is then ``k`` shifts and ``k - 1`` additions, counted in BoP as
``(k - 1)(b_w + b_a)`` (a shift is wiring: no bit operation; each addition at the width of the shifted operands)
instead of ``b_w b_a``; NABS counts ``2 k - 1`` as on any grid (for power-of-two weights ``k <= m``); RMpS still
counts the product (the metric counts the network's products whatever their implementation).
:func:`count_multiplications_reference` with ``shift_add_bits`` performs the products by the weights of Dense,
LSTM and GRU layers as those shifts and adds and counts them (``shifts``, ``shift_additions``).

Classical DSP
=============
- **Dispersion memory** (taps): ``N_CD = ceil(|beta2| L 2 pi B F_s)``: the group-delay spread
  ``|beta2| L 2 pi B`` of the signal bandwidth ``B = R_s (1 + rolloff)`` over length ``L``, in samples at
  ``F_s = sps R_s``. (Savory's tap count, Opt. Express 16(2), 2008, uses ``B = F_s``; beta3 is neglected.)
- **CDC**: frequency-domain overlap-save per polarization (Spinnler, IEEE JSTQE 16(5), 2010; Freire et al.
  2021/2023): a block of ``N_FFT`` samples costs a radix-2 FFT and IFFT (``(N_FFT/2) log2 N_FFT`` complex
  multiplications each, no trivial-twiddle savings) and ``N_FFT`` filter coefficients, i.e. ``N_FFT (log2 N_FFT +
  1)`` complex multiplications of 4 real multiplications and 2 real additions; each butterfly adds 2 complex
  additions (4 real). The block yields ``N_FFT - N_CD + 1`` samples, so
  ``RMpS_CDC = sps * 4 N_FFT (log2 N_FFT + 1) / (N_FFT - N_CD + 1)``, with ``N_FFT`` the power of two that
  minimizes it (unless given).
- **DBP** with ``k`` steps per span over ``n_spans`` spans at ``sps`` samples per symbol: ``n_spans k`` steps,
  each a linear step (dispersion of ``L_span / k``) by overlap-save as for CDC with its own tap count and optimal
  FFT size, on both polarizations, plus a nonlinear step per dual-polarization sample: ``|A_x|^2 + |A_y|^2`` (4
  multiplications, 3 additions), the phase scale ``xi (8/9) gamma L_eff`` (1 multiplication by a constant),
  ``exp(j phi)`` by a look-up table of cos/sin (``exp_multiplications = 0``; a 2nd-order Taylor series would be
  about 2), and the rotation of both polarizations (2 complex multiplications: 8 multiplications, 4 additions).
  The span loss is folded into the filter coefficients. Filtered DBP (:mod:`channel.dbp`) low-pass filters the
  power by a symmetric FIR of ``2M + 1`` taps before the rotation; the phase scale is folded into its taps, and
  the symmetric pairs of samples are added first: ``M + 1`` multiplications by constants (instead of the phase
  scale's 1), ``M`` additions of products and ``M`` plain additions per dual-polarization sample. The position of
  the nonlinear step within a step costs nothing. Per single-polarization symbol:
  ``RMpS_DBP = n_spans k sps (2 RMpS_lin + 13 + M + exp_multiplications) / 2`` with ``RMpS_lin`` the overlap-save
  multiplications per sample of one polarization (``M = 0`` without the power filter).
  :func:`count_dbp_nonlinear_step_reference` performs the nonlinear step one operation at a time and counts them;
  its count per sample equals the nonlinear term (tests/test_dbp_variants.py).
- DSP BoP and NABS at ``bits`` (default 32): multiplications ``b^2``; additions that sum two products (inside a
  complex multiplication, and the power) at ``2b + 1`` bits, other additions (FFT butterflies) at ``b + 1`` (the
  fixed-point FFT rounds each stage back to ``b`` bits). In NABS, multiplications by constants (twiddles, filter
  coefficients, the phase scale) cost ``2 k_avg - 1`` with ``k_avg = (b - 1)/3 + 1/9`` the average CSD digit
  count of a ``(b - 1)``-bit magnitude; products of two variables cost ``2b - 1``.

Verification
============
:func:`count_multiplications_reference` runs the forward pass of a model on one window in NumPy (float64),
performing exactly the operations described above one by one (per input, one product per distinct non-zero weight,
reused; zero weights skipped), and counts them; its output equals ``model.predict`` and its counts equal
:func:`model_complexity` (tests/test_complexity.py).

Layout
======
:mod:`.counting` (bit checks, CSD, the grid, :class:`~.counting.Tally` of the formulas and
:class:`~.counting.Counter` of the reference), :mod:`.nn` (:func:`model_complexity`,
:func:`count_multiplications_reference`), :mod:`.dsp` (CDC, DBP), :mod:`.results`. Each layer type's formulas and
reference inference live in its module of :mod:`eqnn.layers` (Dense in ``dense``, LSTM and Bidirectional(LSTM) in
``recurrent``, GRU and Bidirectional(GRU) in ``gru``, Conv1D in ``conv1d``, activations and arithmetic-free
layers in ``free``); a new type registers both
there (:func:`eqnn.layers.register_layer_type`).
"""

from .counting import (
    DEFAULT_BITS,
    MAX_BITS,
    MIN_BITS,
    ComplexityError,
    average_csd_digits,
    csd_digit_count,
    quantize_to_integers,
)
from .dsp import (
    cdc_complexity,
    count_dbp_nonlinear_step_reference,
    dbp_complexity,
    dispersion_taps,
    optimal_fft_size,
    overlap_save_rmps_per_sample,
)
from .nn import count_multiplications_reference, model_complexity
from .results import Complexity, LayerComplexity, ModelComplexity, ReferenceCount

__all__ = ["DEFAULT_BITS", "MAX_BITS", "MIN_BITS", "Complexity", "ComplexityError", "LayerComplexity",
           "ModelComplexity", "ReferenceCount", "average_csd_digits", "cdc_complexity",
           "count_dbp_nonlinear_step_reference",
           "count_multiplications_reference", "csd_digit_count", "dbp_complexity", "dispersion_taps",
           "model_complexity", "optimal_fft_size", "overlap_save_rmps_per_sample", "quantize_to_integers"]
