"""Configuration: validation errors name the field and the allowed range; TOML loading; derived SI values.

The derived quantities are checked against independent definitions (dB attenuation, beta3 as the
numerical derivative d beta2 / d omega of the dispersion curve D(lambda) = D + S (lambda - lambda0)).
"""

from __future__ import annotations

import math

import pytest

import channel
from channel import ConfigError, LinkConfig

C = 299_792_458.0


def small(**sections):
    return channel.reference_config().replace(**sections)


# --- every bad input gives its own error, naming the field and the allowed values ----------------------------

BAD_VALUES = [
    # (section, key, value, substrings that the message must contain)
    ("transmitter", "rolloff", 1.5, ["transmitter.rolloff", "1.5", "[0, 1]"]),
    ("transmitter", "rolloff", -0.1, ["transmitter.rolloff", "[0, 1]"]),
    ("transmitter", "rolloff", True, ["transmitter.rolloff", "finite number"]),
    ("transmitter", "modulation", "8PSK", ["transmitter.modulation", "'8PSK'", "'16QAM'", "'64QAM'"]),
    ("transmitter", "modulation", 16, ["transmitter.modulation", "string"]),
    ("transmitter", "samples_per_symbol", 1, ["transmitter.samples_per_symbol", "[2, 64]"]),
    ("transmitter", "samples_per_symbol", 2.5, ["transmitter.samples_per_symbol", "integer"]),
    ("transmitter", "n_symbols", 10, ["transmitter.n_symbols", "[64, "]),
    ("transmitter", "seed", -1, ["transmitter.seed", "[0, inf]"]),
    ("transmitter", "launch_power_dbm", 31.0, ["transmitter.launch_power_dbm", "[-30, 30]"]),
    ("transmitter", "launch_power_dbm", float("nan"), ["transmitter.launch_power_dbm", "finite"]),
    ("transmitter", "launch_power_dbm", "0", ["transmitter.launch_power_dbm", "finite number"]),
    ("transmitter", "symbol_rate_gbd", 0.0, ["transmitter.symbol_rate_gbd", "(0, 1000]"]),
    ("transmitter", "n_channels", 2, ["transmitter.n_channels", "odd"]),
    ("fiber", "attenuation_db_km", -0.2, ["fiber.attenuation_db_km", "[0, 10]"]),
    ("fiber", "gamma_per_w_km", float("inf"), ["fiber.gamma_per_w_km", "finite"]),
    ("fiber", "wavelength_nm", 500.0, ["fiber.wavelength_nm", "[800, 2000]"]),
    ("link", "n_spans", 0, ["link.n_spans", "[1, 1000]"]),
    ("link", "n_spans", "3", ["link.n_spans", "integer"]),
    ("link", "n_spans", 2.0, ["link.n_spans", "integer"]),
    ("link", "span_length_km", 0.0, ["link.span_length_km", "(0, 500]"]),
    ("link", "noise_figure_db", 25.0, ["link.noise_figure_db", "[0, 20]"]),
    ("link", "noiseless", 1, ["link.noiseless", "true or false"]),
    ("propagation", "step_mode", "magic", ["propagation.step_mode", "'fixed'", "'adaptive'"]),
    ("propagation", "steps_per_span", 0, ["propagation.steps_per_span", "[1, 100000]"]),
    ("propagation", "max_nonlinear_phase_rad", 0.0, ["propagation.max_nonlinear_phase_rad", "(0, 1]"]),
    ("propagation", "precision", "float16", ["propagation.precision", "'complex64'", "'complex128'"]),
    ("receiver", "dbp_xi", "foo", ["receiver.dbp_xi", "'foo'", "'optimize'"]),
    ("receiver", "dbp_xi", 2.5, ["receiver.dbp_xi", "[0, 2]"]),
    ("receiver", "dbp_steps_per_span", [1, 1], ["receiver.dbp_steps_per_span", "distinct"]),
    ("receiver", "dbp_steps_per_span", [0], ["receiver.dbp_steps_per_span", "[1, 1000]"]),
    ("receiver", "dbp_steps_per_span", 3, ["receiver.dbp_steps_per_span", "list"]),
    ("receiver", "dbp_samples_per_symbol", 1, ["receiver.dbp_samples_per_symbol", "[2, 16]"]),
]


@pytest.mark.parametrize("section,key,value,expected", BAD_VALUES,
                         ids=[f"{s}.{k}={v!r}" for s, k, v, _ in BAD_VALUES])
def test_bad_value_names_field_and_range(section, key, value, expected):
    with pytest.raises(ConfigError) as exc:
        small(**{section: {key: value}})
    for text in expected:
        assert text in str(exc.value), (text, str(exc.value))
    # the same value read from a table (the TOML path) gives the same error
    with pytest.raises(ConfigError) as exc2:
        LinkConfig.from_dict({section: {key: value}})
    assert str(exc2.value) == str(exc.value)


def test_unknown_key_and_section():
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['rolof'\] in \[transmitter\].*rolloff"):
        small(transmitter={"rolof": 0.2})
    with pytest.raises(ConfigError, match=r"unknown section.*'fibre'"):
        LinkConfig.from_dict({"fibre": {}})
    with pytest.raises(ConfigError, match="unknown section"):
        small(fibre={"gamma_per_w_km": 1.0})


def test_dbp_oversampling_above_forward_oversampling():
    with pytest.raises(ConfigError) as exc:
        small(transmitter={"samples_per_symbol": 2}, receiver={"dbp_samples_per_symbol": 4})
    msg = str(exc.value)
    assert "receiver.dbp_samples_per_symbol = 4" in msg and "transmitter.samples_per_symbol = 2" in msg
    assert "[2, 2]" in msg
    # equal is allowed
    small(transmitter={"samples_per_symbol": 4}, receiver={"dbp_samples_per_symbol": 4})


def test_wdm_spacing_and_sample_rate():
    # 30 GBd, rolloff 0.1: signal bandwidth 33 GHz
    with pytest.raises(ConfigError) as exc:
        small(transmitter={"n_channels": 3, "channel_spacing_ghz": 32.0, "samples_per_symbol": 8})
    assert "transmitter.channel_spacing_ghz" in str(exc.value) and "33" in str(exc.value)
    small(transmitter={"n_channels": 3, "channel_spacing_ghz": 33.0, "samples_per_symbol": 8})
    # 3 x 50 GHz = 150 GHz of WDM band needs a sample rate >= 150 GHz: sps >= 5 at 30 GBd
    with pytest.raises(ConfigError) as exc:
        small(transmitter={"n_channels": 3, "channel_spacing_ghz": 50.0, "samples_per_symbol": 4})
    assert "transmitter.samples_per_symbol" in str(exc.value) and ">= 5" in str(exc.value)


def test_too_many_samples():
    with pytest.raises(ConfigError, match="2\\*\\*26"):
        small(transmitter={"n_symbols": 2**24, "samples_per_symbol": 8})


def test_wrong_section_type():
    with pytest.raises(ConfigError, match=r"\[link\] must be a table"):
        LinkConfig.from_dict({"link": 3})
    with pytest.raises(ConfigError, match="transmitter: expected a TransmitterConfig"):
        LinkConfig(transmitter={"n_symbols": 100})


# --- TOML files ----------------------------------------------------------------------------------------------

GOOD_TOML = """
name = "test-link"
[transmitter]
modulation = "16QAM"
symbol_rate_gbd = 32
n_symbols = 1024
launch_power_dbm = -2
[fiber]
gamma_per_w_km = 1.1
[link]
n_spans = 3
span_length_km = 80
noiseless = true
[propagation]
step_mode = "adaptive"
[receiver]
dbp_steps_per_span = [1, 4]
dbp_xi = 1
"""


def test_load_config_from_toml(tmp_path):
    path = tmp_path / "link.toml"
    path.write_text(GOOD_TOML)
    cfg = channel.load_config(path)
    assert cfg.name == "test-link"
    assert cfg.transmitter.modulation == "16QAM" and cfg.transmitter.n_symbols == 1024
    # integers given for float fields become floats
    assert cfg.transmitter.symbol_rate_gbd == 32.0 and isinstance(cfg.transmitter.symbol_rate_gbd, float)
    assert cfg.receiver.dbp_xi == 1.0 and isinstance(cfg.receiver.dbp_xi, float)
    assert cfg.receiver.dbp_steps_per_span == (1, 4)
    assert cfg.link.n_spans == 3 and cfg.link.span_length_km == 80.0 and cfg.link.noiseless is True
    assert cfg.propagation.step_mode == "adaptive"
    # unspecified values keep their defaults
    assert cfg.fiber.attenuation_db_km == channel.FiberConfig().attenuation_db_km
    assert cfg.total_length == 3 * 80e3
    # a study file may nest the sections under [scenario]
    nested = tmp_path / "study.toml"
    nested.write_text("[scenario]\n" + GOOD_TOML.replace("\n[", "\n[scenario.").replace('name = "test-link"', ""))
    nested_cfg = channel.load_config(nested)
    assert nested_cfg.replace(name="test-link") == cfg
    # JSON round trip and digest
    assert LinkConfig.from_json(cfg.to_json()) == cfg
    assert LinkConfig.from_json(cfg.to_json()).digest() == cfg.digest()
    assert cfg.with_seed(cfg.transmitter.seed + 1).digest() != cfg.digest()


@pytest.mark.parametrize("text,expected", [
    ("[transmitter]\nrolloff = 1.5\n", ["transmitter.rolloff", "[0, 1]"]),
    ("[transmitter]\nmodulation = \"8PSK\"\n", ["transmitter.modulation", "8PSK"]),
    ("[link]\nn_spans = 0\n", ["link.n_spans", "[1, 1000]"]),
    ("[link]\nn_spans = 2.5\n", ["link.n_spans", "integer"]),
    ("[link]\nspan_lenght_km = 80\n", ["unknown key", "span_lenght_km", "span_length_km"]),
    ("[receiver]\ndbp_xi = \"foo\"\n", ["receiver.dbp_xi", "optimize"]),
    ("[link]\nnoiseless = \"yes\"\n", ["link.noiseless", "true or false"]),
    ("[fiber]\ngamma_per_w_km = nan\n", ["fiber.gamma_per_w_km", "finite"]),
    ("[transmitter\nrolloff = 0.1\n", ["not valid TOML"]),
])
def test_load_config_bad_toml(tmp_path, text, expected):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as exc:
        channel.load_config(path)
    for s in expected:
        assert s in str(exc.value), (s, str(exc.value))


def test_load_config_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        channel.load_config(tmp_path / "nope.toml")


def test_repository_reference_toml_loads():
    from pathlib import Path
    # the shipped reference scenario must stay loadable and describe the built-in reference link
    path = Path(__file__).resolve().parents[1] / "experiments" / "reference.toml"
    cfg, ref = channel.load_config(path), channel.reference_config()
    assert (cfg.fiber, cfg.link) == (ref.fiber, ref.link)
    for key in ("modulation", "symbol_rate_gbd", "rolloff"):
        assert getattr(cfg.transmitter, key) == getattr(ref.transmitter, key)


# --- derived SI values against independent definitions --------------------------------------------------------

def test_attenuation_matches_decibel_definition():
    fiber = channel.FiberConfig(attenuation_db_km=0.2)
    # 0.2 dB/km over 50 km is 10 dB: power ratio exactly 0.1
    assert math.exp(-fiber.alpha * 50e3) == pytest.approx(0.1, rel=1e-12)
    cfg = small(link={"span_length_km": 50.0})
    assert channel.span_gain(cfg) == pytest.approx(10.0, rel=1e-12)


def test_beta2_and_beta3_from_dispersion_curve():
    d0, s, lam0 = 17.0, 0.06, 1550.0
    fiber = channel.FiberConfig(dispersion_ps_nm_km=d0, dispersion_slope_ps_nm2_km=s, wavelength_nm=lam0)
    # beta2 of SSMF is about -21.7 ps^2/km (physics notes)
    assert fiber.beta2 * 1e24 * 1e3 == pytest.approx(-21.68, abs=0.01)

    def beta2_at(lam_nm):  # beta2(lambda) = -D(lambda) lambda^2 / (2 pi c), D linear in lambda
        d = (d0 + s * (lam_nm - lam0)) * 1e-6
        lam = lam_nm * 1e-9
        return -d * lam**2 / (2 * math.pi * C)

    # beta3 = d beta2 / d omega = d beta2 / d lambda * d lambda / d omega, d lambda / d omega = -lambda^2 / (2 pi c)
    dl = 0.01
    dbeta2_dlam = (beta2_at(lam0 + dl) - beta2_at(lam0 - dl)) / (2 * dl * 1e-9)
    beta3 = dbeta2_dlam * (-(lam0 * 1e-9) ** 2 / (2 * math.pi * C))
    assert fiber.beta3 == pytest.approx(beta3, rel=1e-6)
    assert fiber.carrier_frequency == pytest.approx(C / 1550e-9, rel=1e-15)
    assert fiber.gamma == pytest.approx(1.3e-3)


def test_launch_power_conversion():
    tx = channel.TransmitterConfig(launch_power_dbm=3.0)
    assert tx.launch_power_w == pytest.approx(1e-3 * 10**0.3, rel=1e-12)
    assert channel.TransmitterConfig(launch_power_dbm=0.0).launch_power_w == pytest.approx(1e-3, rel=1e-15)
    assert tx.sample_rate == tx.symbol_rate_gbd * 1e9 * tx.samples_per_symbol
