"""channel: the physics of a coherent optical fiber link.

A scenario is a :class:`LinkConfig` (load one from TOML with :func:`load_config`);
:func:`simulate` turns it into a :class:`Transmission` holding the transmitted and received symbols,
the DBP outputs and the metrics.

    >>> import channel
    >>> cfg = channel.reference_config().with_launch_power(2.0)
    >>> tr = channel.simulate(cfg)
    >>> tr.metrics["CDC"].q_db

The blocks (:class:`SplitStepFourier`, :class:`Amplifier`, :class:`CoherentReceiver`,
:class:`DigitalBackPropagation`; :func:`transmit` of a :class:`TransmitterConfig`) take their own parameters,
each with a ``from_link(config)``; :mod:`channel.link` composes them. FFT threads and the operator cache budget
are :mod:`channel.runtime` settings (``EQNN_FFT_WORKERS``, ``EQNN_OPERATOR_CACHE_MB``, or ``runtime.configure``).
"""

from . import runtime
from .amplifier import Amplifier, ase_noise_power, ase_only_snr_db, span_gain
from .carrier_recovery import CarrierRecovery, CarrierRecoveryConfig
from .config import (
                     ConfigError,
                     FiberConfig,
                     LinkConfig,
                     PropagationConfig,
                     ReceiverConfig,
                     SpanConfig,
                     TransmitterConfig,
                     load_config,
                     reference_config,
)
from .dbp import DBPSettings, DigitalBackPropagation, backpropagate, optimize_dbp, optimize_xi
from .fiber import FiberParameters, PropagationError, SplitStepFourier, step_lengths, step_plan
from .laser import LaserConfig
from .link import Transmission, propagate_link, simulate, sweep_launch_power
from .metrics import Metrics, evaluate_symbols, q_factor_db, qam_ber_awgn
from .mimo import AdaptiveEqualizer
from .pmd import PolarizationModeDispersion
from .receiver import CoherentReceiver
from .runtime import RuntimeSettings
from .storage import CorruptFileError
from .transceiver import TransceiverConfig
from .transmitter import qam_constellation, transmit
from .wdm import ChannelGrid

__all__ = [
    "AdaptiveEqualizer", "Amplifier", "ChannelGrid", "CoherentReceiver", "DBPSettings", "DigitalBackPropagation",
    "PolarizationModeDispersion", "RuntimeSettings", "runtime", "step_plan", "CarrierRecovery",
    "CarrierRecoveryConfig", "LaserConfig", "TransceiverConfig",
    "ConfigError", "CorruptFileError", "FiberConfig", "FiberParameters", "LinkConfig", "Metrics",
    "PropagationConfig", "PropagationError", "ReceiverConfig", "SpanConfig", "SplitStepFourier",
    "Transmission", "TransmitterConfig", "ase_noise_power", "ase_only_snr_db", "backpropagate",
    "evaluate_symbols", "load_config", "optimize_dbp", "optimize_xi", "propagate_link", "q_factor_db", "qam_ber_awgn",
    "qam_constellation", "reference_config", "simulate", "span_gain", "sweep_launch_power", "step_lengths", "transmit",
]
