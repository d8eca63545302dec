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
