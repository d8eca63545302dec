"""Polarization-mode dispersion (PMD) by the coarse-step method, applied inside the SSFM stepper.

The fibre is a concatenation of ``N = n_spans * sections_per_span`` birefringent sections of equal length (the
"coarse-step" or wave-plate model: Marcuse, Menyuk & Wai, J. Lightwave Technol. 15(9), 1735, 1997; Prola et al.,
IEEE Photon. Technol. Lett. 9(6), 842, 1997). Section ``k`` acts on the spectrum ``(A_x, A_y)(w)`` (numpy.fft
convention of :mod:`channel.fiber`, ``A(t) = sum_k A_k exp(+j w_k t)``) as the unitary Jones matrix::

    J_k(w) = R_k B(w),   B(w) = diag(exp(-j w tau_s / 2), exp(+j w tau_s / 2))

``B`` delays the x polarization by ``tau_s / 2`` and advances y by ``tau_s / 2`` (a differential group delay
``tau_s`` between the section's principal states, no common delay); ``R_k`` is a Haar-random matrix of SU(2)
(``[[a, -conj(b)], [b, conj(a)]]`` with ``(Re a, Im a, Re b, Im b)`` uniform on the unit 3-sphere), i.e. a
rotation of the Stokes space uniform on the Poincare sphere. ``det J_k = 1`` and ``J_k^H J_k = I``: every section
conserves power at every frequency. The link's Jones matrix is ``J(w) = J_N(w) ... J_1(w)``.

Scaling. In Stokes space the PMD vector of the first k sections obeys ``Omega_k = M_k Omega_(k-1) + tau_s r_k``
(``M_k`` the rotation of ``R_k``, ``r_k`` a unit vector); as ``M_k`` is uniform on SO(3) and independent of the
past, ``M_k Omega_(k-1)`` points in a uniformly random direction, so ``|Omega_N|`` is the length of an isotropic
random walk of ``N`` steps of length ``tau_s`` and ``E[DGD^2] = E|Omega_N|^2 = N tau_s^2`` exactly, for any N. As
N grows the DGD tends to the Maxwellian law, whose mean and RMS are related by
``<DGD> = sqrt(8 / (3 pi)) sqrt(E[DGD^2])``. Setting the Maxwellian mean to the configured
``<DGD> = D_PMD sqrt(L)`` (``L = n_spans * span_length`` the link length) gives the per-section DGD::

    tau_s = sqrt(3 pi / 8) <DGD> / sqrt(N) = sqrt(3 pi / 8) D_PMD sqrt(L / N)      (independent of n_spans)

The RMS DGD is then exact for every N; the mean is exact in the Maxwellian limit and, for a finite walk, higher by
``E|S_N| / sqrt(8 N / (3 pi)) - 1`` (``S_N`` the walk of N unit steps): +8.5 % for N = 1, +2.3 % for N = 2, about
``1 / (21 N)`` beyond (+0.5 % at N = 10, +0.12 % at N = 40; Monte Carlo). Because every section has the same
``tau_s``, the link's PMD is periodic in frequency with period ``1 / tau_s`` (an artefact of the model): keep
``1 / tau_s`` well above the simulated bandwidth (e.g. 0.1 ps/sqrt(km), 50 km spans, 20 sections per span:
``tau_s = 0.17 ps``, period 5.8 THz).

Placement in the stepper: the section operators commute with the (scalar, per-frequency) dispersion and loss of
the linear step, so each is applied in the frequency domain at a linear step of :class:`channel.fiber.SplitStepFourier`
(no extra FFT): section ``j`` of a span, which ends at ``z = (j + 1) L_span / sections_per_span``, is applied in the
first linear stage of the span that ends at or after that point (the last section in the span's closing half step).
The rotations are drawn from ``numpy.random.default_rng(pmd_seed)`` in span order, so the same seed gives the same
fibre and a longer link starts with the same spans.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np

from .config import LinkConfig

#: frequency bins per block when a section is applied (bounds the temporaries)
SECTION_BLOCK = 65536


def haar_su2(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` Haar-random matrices of SU(2), shape (n, 2, 2) complex128: ``[[a, -conj(b)], [b, conj(a)]]`` with
    ``(Re a, Im a, Re b, Im b)`` a normalized 4-vector of standard normal draws (uniform on the 3-sphere)."""
    q = rng.standard_normal((n, 4))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    a = q[:, 0] + 1j * q[:, 1]
    b = q[:, 2] + 1j * q[:, 3]
    return np.stack([np.stack([a, -np.conj(b)], -1), np.stack([b, np.conj(a)], -1)], -2)


def section_dgd(mean_dgd: float, n_sections: int) -> float:
    """Per-section DGD ``tau_s = sqrt(3 pi / 8) <DGD> / sqrt(N)`` (s) for a link of mean DGD ``mean_dgd`` (s)
    made of ``N = n_sections`` sections (module docstring)."""
    return math.sqrt(3 * math.pi / 8) * mean_dgd / math.sqrt(n_sections)


def maxwellian_pdf(dgd: np.ndarray, mean_dgd: float) -> np.ndarray:
    """Maxwellian density of the DGD with mean ``<DGD>``: ``p(t) = sqrt(2/pi) t^2 exp(-t^2 / (2 a^2)) / a^3``,
    ``a = <DGD> sqrt(pi / 8)`` (1/s for t in s)."""
    a = mean_dgd * math.sqrt(math.pi / 8)
    t = np.asarray(dgd, dtype=float)
    return math.sqrt(2 / math.pi) * t**2 * np.exp(-t**2 / (2 * a**2)) / a**3


@dataclass(frozen=True)
class PolarizationModeDispersion:
    """One realization of a fibre's PMD: ``n_spans * sections_per_span`` sections (module docstring).

    Attributes:
        rotations: complex128 (n_sections, 2, 2), the SU(2) matrices ``R_k`` in propagation order.
        dgd_per_section: ``tau_s`` in s.
        sections_per_span: sections per span (section ``k`` lies in span ``k // sections_per_span``).
    """

    rotations: np.ndarray
    dgd_per_section: float
    sections_per_span: int

    @classmethod
    def draw(cls, mean_dgd: float, n_spans: int, sections_per_span: int, seed: int) -> "PolarizationModeDispersion":
        """A fibre of mean DGD ``mean_dgd`` (s) over ``n_spans`` spans: ``tau_s`` by :func:`section_dgd`, the
        rotations by :func:`haar_su2` from ``numpy.random.default_rng(seed)``."""
        n = n_spans * sections_per_span
        rotations = haar_su2(np.random.default_rng(seed), n)
        rotations.setflags(write=False)
        return cls(rotations, section_dgd(mean_dgd, n), sections_per_span)

    @classmethod
    def from_link(cls, config: LinkConfig) -> Optional["PolarizationModeDispersion"]:
        """The PMD of the link ``config`` (``fiber.pmd_ps_sqrt_km``, ``pmd_sections_per_span``, ``pmd_seed``);
        None without PMD. Mean DGD ``D_PMD sqrt(L)``: ps/sqrt(km) * sqrt(km) -> s."""
        fiber = config.fiber
        if fiber.pmd_ps_sqrt_km == 0:
            return None
        mean_dgd = fiber.pmd_ps_sqrt_km * 1e-12 * math.sqrt(config.total_length / 1e3)
        return cls.draw(mean_dgd, config.link.n_spans, fiber.pmd_sections_per_span, fiber.pmd_seed)

    @property
    def n_sections(self) -> int:
        return len(self.rotations)

    @property
    def n_spans(self) -> int:
        return self.n_sections // self.sections_per_span

    @property
    def mean_dgd(self) -> float:
        """The configured (Maxwellian) mean DGD of the whole link in s: ``tau_s sqrt(8 N / (3 pi))``."""
        return self.dgd_per_section * math.sqrt(8 * self.n_sections / (3 * math.pi))

    def birefringence_phasor(self, omega: np.ndarray, dtype: np.dtype = np.complex128) -> np.ndarray:
        """``exp(-j w tau_s / 2)``, same shape as ``omega`` (rad/s): the x entry of ``B(w)`` (y: its conjugate)."""
        phase = -0.5 * self.dgd_per_section * np.asarray(omega, dtype=float)
        return (np.cos(phase) + 1j * np.sin(phase)).astype(dtype, copy=False)

    def apply_section(self, spectrum: np.ndarray, section: int, phasor: np.ndarray) -> None:
        """``spectrum <- J_section(w) spectrum`` in place, per frequency bin.

        Args:
            spectrum: complex (..., 2, n): the field's spectrum (both polarizations on axis -2).
            section: 0-based index of the section in the link.
            phasor: complex (n,), :meth:`birefringence_phasor` of the spectrum's angular frequencies.
        """
        if spectrum.ndim < 2 or spectrum.shape[-2] != 2:
            raise ValueError(f"PMD needs both polarizations on axis -2, got a spectrum of shape {spectrum.shape}")
        r = self.rotations[section].astype(spectrum.dtype)
        n = spectrum.shape[-1]
        for i in range(0, n, SECTION_BLOCK):
            block = slice(i, i + SECTION_BLOCK)
            p = phasor[block]
            x = spectrum[..., 0, block] * p
            y = spectrum[..., 1, block] * np.conj(p)
            spectrum[..., 0, block] = r[0, 0] * x + r[0, 1] * y
            spectrum[..., 1, block] = r[1, 0] * x + r[1, 1] * y

    def jones_matrix(self, omega: np.ndarray, sections: Optional[slice] = None) -> np.ndarray:
        """The Jones matrix ``J(w) = J_last(w) ... J_first(w)`` of the sections ``sections`` (default: all),
        complex128 (len(omega), 2, 2), for angular frequencies ``omega`` (rad/s, shape (m,))."""
        omega = np.atleast_1d(np.asarray(omega, dtype=float))
        phasor = self.birefringence_phasor(omega)
        birefringence = np.zeros((len(omega), 2, 2), complex)
        birefringence[:, 0, 0] = phasor
        birefringence[:, 1, 1] = np.conj(phasor)
        total = np.broadcast_to(np.eye(2, dtype=complex), (len(omega), 2, 2)).copy()
        for r in self.rotations[sections if sections is not None else slice(None)]:
            total = r @ (birefringence @ total)
        return total

    def section_stages(self, steps: np.ndarray, nonlinear_position: float) -> list[list[int]]:
        """Which sections of a span go into which linear stage of the stepper.

        Linear stage ``i < n_steps`` ends at the nonlinear point of step ``i``, ``z_i = sum(h[:i]) + q h[i]``
        (``q = nonlinear_position``); stage ``n_steps`` (the closing half step) ends at the span's end.
        Returns: per stage (``n_steps + 1`` lists) the within-span indices ``j`` of the sections whose end
        ``(j + 1) L_span / sections_per_span`` is reached first in that stage.
        """
        steps = np.asarray(steps, dtype=float)
        span = float(steps.sum())
        ends = np.concatenate([np.cumsum(steps) - (1 - nonlinear_position) * steps, [span]])
        stages: list[list[int]] = [[] for _ in range(len(steps) + 1)]
        for j in range(self.sections_per_span):
            z = (j + 1) * span / self.sections_per_span
            stage = int(np.searchsorted(ends, z * (1 - 1e-12), side="left"))
            stages[min(stage, len(steps))].append(j)
        return stages


def differential_group_delay(jones: np.ndarray, omega: np.ndarray) -> np.ndarray:
    """DGD (s) of a unitary Jones matrix ``J(w)`` from its values at ``w - d`` and ``w + d``.

    The eigenvalues of ``J(w + d) J(w - d)^H`` are ``exp(j (phi -+ DGD d))`` (the principal states' group delays
    differ by the DGD), so ``DGD = |arg(l_1 / l_2)| / (2 d)``, valid for ``DGD d < pi / 2``.

    Args:
        jones: complex (..., 2, 2, 2): ``jones[..., 0, :, :] = J(w - d)``, ``jones[..., 1, :, :] = J(w + d)``.
        omega: the two angular frequencies ``(w - d, w + d)`` in rad/s.
    Returns: float (...,), the DGD in s.
    """
    product = jones[..., 1, :, :] @ np.conj(np.swapaxes(jones[..., 0, :, :], -1, -2))
    eig = np.linalg.eigvals(product)
    return np.abs(np.angle(eig[..., 0] / eig[..., 1])) / (omega[1] - omega[0])

