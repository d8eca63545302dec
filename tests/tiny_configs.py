"""Small configurations shared by several test modules."""

# The link, propagation and receiver of a tiny link TOML (2 spans of 40 km, 4 fixed steps, DBP-1 at xi = 1): each
# test puts its own name and [transmitter] table in front.
TINY_LINK_TAIL = """
[link]
n_spans = 2
span_length_km = 40.0
[propagation]
step_mode = "fixed"
steps_per_span = 4
[receiver]
dbp_steps_per_span = [1]
dbp_xi = 1.0
"""

# A training study on a tiny link (2 spans, 1024 16QAM symbols, fixed steps) with one tiny MLP: everything of an
# `eqnn train` TOML after the top-level keys, which each test writes itself.
TINY_TRAINING = """
[seeds]
train = 5
test = 6
[scenario]
name = "small"
[scenario.transmitter]
modulation = "16QAM"
n_symbols = 1024
[scenario.link]
n_spans = 2
span_length_km = 40.0
[scenario.propagation]
step_mode = "fixed"
steps_per_span = 4
[scenario.receiver]
dbp_steps_per_span = [1]
dbp_xi = 1.0
[data]
taps = 2
guard_symbols = 4
[training]
epochs = 2
batch_size = 128
seed = 1
[[models]]
type = "mlp"
name = "MLP"
units = [8]
"""


def tiny_link():
    """The tiny 16QAM link (2 x 40 km, 1024 symbols, 4 fixed steps, DBP-1 at xi = 1) of the stage tests."""
    import channel

    return channel.reference_config().replace(
        transmitter={"modulation": "16QAM", "n_symbols": 1024, "seed": 1, "launch_power_dbm": 2.0},
        link={"n_spans": 2, "span_length_km": 40.0}, propagation={"step_mode": "fixed", "steps_per_span": 4},
        receiver={"dbp_steps_per_span": [1], "dbp_xi": 1.0}, name="tiny")


def train_tiny_mlp(epochs: int):
    """An MLP(8) trained for ``epochs`` on :func:`tiny_link` (seed 11; test seed 12, with DBP):
    ``(equalizer, training windows, test transmission)``. Windows of ``TINY_DATA``."""
    import channel
    from eqnn.data import make_datasets
    from eqnn.models import MLPConfig
    from eqnn.train import TrainingConfig, train_model

    link = tiny_link()
    tr, te = channel.simulate(link.with_seed(11), dbp=False), channel.simulate(link.with_seed(12), dbp=True)
    train_set, _ = make_datasets(tr, te, TINY_DATA)
    eq = train_model(MLPConfig(units=(8,)), train_set, TrainingConfig(epochs=epochs, batch_size=128, seed=0),
                     TINY_DATA, progress=False)
    return eq, train_set, te


def _tiny_data():
    from eqnn.data import DataConfig

    return DataConfig(taps=2, guard_symbols=4)


TINY_DATA = _tiny_data()
