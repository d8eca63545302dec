"""Performance metrics of received symbols: BER, Q-factor, effective SNR, EVM, GMI.

Conventions:
- Symbols are compared on the scale of the unit-energy constellation (after :func:`channel.receiver.normalize`).
- Effective SNR = sum |a|^2 / sum |y - a|^2 over both polarizations, after removal of one complex gain
  per polarization (so it is the SNR a linear receiver with perfect phase/gain recovery sees).
- Q-factor from BER: ``Q = 20 log10(sqrt(2) erfcinv(2 BER))`` dB, computed with scipy's erfcinv.
  Its 95 % confidence interval comes from the Clopper-Pearson interval of the BER given the number of
  counted bit errors (treating bit errors as independent, which slightly understates the width since
  a symbol error can flip two bits). With fewer than ``MIN_BIT_ERRORS`` errors the Q from BER is not
  reported (``q_db is None``) and ``q_db_from_snr`` - the Q of the AWGN BER at the measured SNR - is
  given instead, labelled as such.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Optional

import numpy as np
from scipy import special, stats

from .transmitter import pam_levels, qam_constellation

MIN_BIT_ERRORS = 20
CONFIDENCE = 0.95


def bits_per_symbol(modulation: str) -> int:
    return int(np.log2(len(qam_constellation(modulation)[0])))


def hard_decision(symbols: np.ndarray, modulation: str) -> np.ndarray:
    """Nearest-point decision for square QAM (per-dimension slicing). Returns int64 indices, same shape."""
    n_levels = int(round(math.sqrt(len(qam_constellation(modulation)[0]))))
    scale = math.sqrt(2 * (n_levels**2 - 1) / 3)

    def level(v: np.ndarray) -> np.ndarray:
        return np.clip(np.rint((v * scale + (n_levels - 1)) / 2), 0, n_levels - 1).astype(np.int64)

    return level(symbols.real) * n_levels + level(symbols.imag)


def count_bit_errors(rx_indices: np.ndarray, tx_indices: np.ndarray, modulation: str) -> tuple[int, int]:
    """Bit errors between Gray-mapped symbol indices. Returns (errors, bits compared)."""
    _, bits = qam_constellation(modulation)
    errors = int(np.count_nonzero(bits[rx_indices] != bits[tx_indices]))
    return errors, int(tx_indices.size * bits.shape[1])


def q_factor_db(ber: float | np.ndarray) -> float | np.ndarray:
    """Q-factor in dB from BER: ``20 log10(sqrt(2) erfcinv(2 BER))``; nan for BER outside (0, 0.5)."""
    ber = np.asarray(ber, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        q = 20 * np.log10(np.sqrt(2) * special.erfcinv(2 * ber))
    q = np.where((ber > 0) & (ber < 0.5), q, np.nan)
    return float(q) if q.ndim == 0 else q


def ber_confidence_interval(errors: int, n_bits: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Clopper-Pearson interval of the BER given ``errors`` in ``n_bits``."""
    a = 1 - confidence
    lo = 0.0 if errors == 0 else float(stats.beta.ppf(a / 2, errors, n_bits - errors + 1))
    hi = 1.0 if errors == n_bits else float(stats.beta.ppf(1 - a / 2, errors + 1, n_bits - errors))
    return lo, hi


def qam_ber_awgn(snr_db: float | np.ndarray, modulation: str) -> float | np.ndarray:
    """Exact BER of Gray-mapped square M-QAM in AWGN at SNR = Es/N0 (Cho & Yoon, IEEE TCOM 2002).

    ``P_b = 1/log2(sqrt M) sum_k P(k)``, ``P(k) = 1/sqrt(M) sum_{i=0}^{(1-2^-k) sqrt(M) - 1}
    (-1)^floor(i 2^(k-1)/sqrt M) (2^(k-1) - floor(i 2^(k-1)/sqrt M + 1/2)) erfc((2i+1) sqrt(3 SNR/(2(M-1))))``.
    """
    m_points = len(qam_constellation(modulation)[0])
    root = int(round(math.sqrt(m_points)))
    n_k = int(round(math.log2(root)))
    snr = 10 ** (np.asarray(snr_db, dtype=float) / 10)
    arg = np.sqrt(3 * snr / (2 * (m_points - 1)))
    total = np.zeros_like(snr)
    for k in range(1, n_k + 1):
        pk = np.zeros_like(snr)
        for i in range(int((1 - 2.0**-k) * root)):
            w = i * 2 ** (k - 1) / root
            pk = pk + (-1) ** math.floor(w) * (2 ** (k - 1) - math.floor(w + 0.5)) * special.erfc((2 * i + 1) * arg)
        total = total + pk / root
    ber = total / n_k
    return float(ber) if ber.ndim == 0 else ber


def effective_snr_db(received: np.ndarray, transmitted: np.ndarray) -> float:
    """``10 log10(sum |a|^2 / sum |y - a|^2)`` over all given symbols (already gain-normalized)."""
    err = np.sum(np.abs(received - transmitted) ** 2)
    return float(10 * np.log10(np.sum(np.abs(transmitted) ** 2) / err)) if err > 0 else math.inf


def evm_percent(received: np.ndarray, transmitted: np.ndarray) -> float:
    """RMS error vector magnitude relative to the RMS constellation amplitude, in percent."""
    return float(100 * np.sqrt(np.mean(np.abs(received - transmitted) ** 2) / np.mean(np.abs(transmitted) ** 2)))


#: symbols per block of the GMI computation (bounds its temporary memory)
GMI_BLOCK = 65536


def gmi_bits(received: np.ndarray, tx_indices: np.ndarray, modulation: str) -> float:
    """Generalized mutual information (bits per 2-D symbol, averaged over polarizations).

    Bit-wise decoding metric with a circular Gaussian channel of variance ``s2 = mean |y - a|^2``::

        GMI = m + mean_k sum_i log2( sum_{x: b_i(x) = b_ki} exp(-|y_k - x|^2/s2) / sum_x exp(-|y_k - x|^2/s2) )

    For Gray square QAM the sums factor into the I and Q dimensions, which is how it is computed.
    """
    points, _ = qam_constellation(modulation)
    n_levels = int(round(math.sqrt(len(points))))
    levels = pam_levels(n_levels)
    half = int(round(math.log2(n_levels)))
    gray = np.arange(n_levels) ^ (np.arange(n_levels) >> 1)
    label_bits = (gray[:, None] >> np.arange(half - 1, -1, -1)) & 1  # (L, half)
    tx_i, tx_q = np.divmod(np.asarray(tx_indices).ravel(), n_levels)
    y = np.asarray(received).ravel()
    s2 = np.mean(np.abs(y - points[np.asarray(tx_indices).ravel()]) ** 2)
    if s2 == 0:
        return float(2 * half)
    total = 0.0
    for start in range(0, y.size, GMI_BLOCK):  # blocks: temporaries of (block, L), not (n, L)
        block = slice(start, start + GMI_BLOCK)
        for values, tx_level in ((y.real[block], tx_i[block]), (y.imag[block], tx_q[block])):
            metric = -((values[:, None] - levels[None, :]) ** 2) / s2  # (block, L)
            log_all = special.logsumexp(metric, axis=1)
            for b in range(half):
                tx_bit = label_bits[tx_level, b]
                log0 = special.logsumexp(np.where(label_bits[:, b] == 0, metric, -np.inf), axis=1)
                log1 = special.logsumexp(np.where(label_bits[:, b] == 1, metric, -np.inf), axis=1)
                total += np.sum(np.where(tx_bit == 0, log0, log1) - log_all)
    return float(2 * half + total / (y.size * math.log(2)))


def q_factor_from_snr_db(snr_db: float, modulation: str) -> float:
    """Q (dB) of the exact AWGN BER of ``modulation`` at ``snr_db``.

    Where that BER underflows (SNR far above any measurable BER) the dominant-term asymptote
    ``20 log10(sqrt(2) sqrt(3 SNR / (2 (M - 1))))`` is used; +inf for an error-free SNR of inf.
    """
    if not math.isfinite(snr_db):
        return math.inf
    ber = qam_ber_awgn(snr_db, modulation)
    if ber > 0:
        return float(q_factor_db(ber))
    m_points = len(qam_constellation(modulation)[0])
    return float(20 * np.log10(np.sqrt(2) * np.sqrt(3 * 10 ** (snr_db / 10) / (2 * (m_points - 1)))))


@dataclass(frozen=True)
class Metrics:
    """Metrics of one block of received symbols (both polarizations).

    Attributes:
        ber: bit-error ratio (counted).  bit_errors, n_bits: the counts.
        q_db: Q-factor from BER in dB, or None if fewer than ``MIN_BIT_ERRORS`` errors were counted.
        q_db_ci: 95 % confidence interval of the Q from BER (low, high); high is None at zero errors.
        q_db_from_snr: Q (dB) of the AWGN BER at the measured SNR - an estimate implied by the SNR,
            not a measurement from counted errors.
        snr_db: effective SNR in dB.  evm_percent: EVM in %.  gmi_bits: GMI per 2-D symbol.
        note: a human-readable caveat ("" when Q from BER is reliable).
    """

    ber: float
    bit_errors: int
    n_bits: int
    q_db: Optional[float]
    q_db_ci: tuple[Optional[float], Optional[float]]
    q_db_from_snr: float
    snr_db: float
    evm_percent: float
    gmi_bits: float
    note: str

    @property
    def q_db_best(self) -> float:
        """Q from BER where it was measured, else the Q implied by the SNR."""
        return self.q_db if self.q_db is not None else self.q_db_from_snr

    def to_dict(self) -> dict:
        d = asdict(self)
        d["q_db_ci"] = list(self.q_db_ci)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Metrics":
        d = dict(d)
        d["q_db_ci"] = tuple(d["q_db_ci"])
        return cls(**d)

    def format_q(self) -> str:
        """E.g. ``8.71 dB [8.65, 8.77]`` or ``>= 12.3 dB (3 errors; 13.1 dB from SNR)``."""
        if self.q_db is not None:
            return f"{self.q_db:.2f} [{self.q_db_ci[0]:.2f}, {self.q_db_ci[1]:.2f}]"
        return f"n/a ({self.bit_errors} err; {self.q_db_from_snr:.2f} from SNR)"


def _none_if_nan(v: float) -> Optional[float]:
    return None if v is None or not math.isfinite(v) else float(v)


def evaluate_symbols(received: np.ndarray, tx_indices: np.ndarray, modulation: str) -> Metrics:
    """All metrics of gain-normalized received symbols against the transmitted indices.

    Args: received complex (..., n); tx_indices int (..., n), same shape.
    """
    received = np.asarray(received)
    tx_indices = np.asarray(tx_indices)
    if received.shape != tx_indices.shape:
        raise ValueError(f"received shape {received.shape} != tx_indices shape {tx_indices.shape}")
    points, _ = qam_constellation(modulation)
    tx = points[tx_indices]
    errors, n_bits = count_bit_errors(hard_decision(received, modulation), tx_indices, modulation)
    ber = errors / n_bits
    snr = effective_snr_db(received, tx)
    q_snr = q_factor_from_snr_db(snr, modulation)
    lo, hi = ber_confidence_interval(errors, n_bits)
    ci = (_none_if_nan(q_factor_db(hi)), _none_if_nan(q_factor_db(lo)) if lo > 0 else None)
    if errors >= MIN_BIT_ERRORS:
        q, note = _none_if_nan(q_factor_db(ber)), ""
        if q is None:
            note = "BER >= 0.5: Q undefined"
    else:
        q = None
        note = (f"only {errors} bit errors in {n_bits} bits (< {MIN_BIT_ERRORS}): Q from BER not measurable"
                f"{'' if ci[0] is None else f', >= {ci[0]:.2f} dB at 95 %'}; "
                f"Q implied by SNR {q_snr:.2f} dB; simulate more symbols to measure it")
    return Metrics(ber=ber, bit_errors=errors, n_bits=n_bits, q_db=q, q_db_ci=ci,
                   q_db_from_snr=float(q_snr), snr_db=snr, evm_percent=evm_percent(received, tx),
                   gmi_bits=gmi_bits(received, tx_indices, modulation), note=note)
