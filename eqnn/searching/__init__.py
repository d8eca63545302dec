"""Bayesian search with checkpoint/resume and the Pareto front, one module per part (the public names and the
user documentation are in :mod:`eqnn.search`):

- :mod:`.files`: file names of a search folder and its errors.
- :mod:`.space`: the dimensions (:class:`Integer`, :class:`Real`, :class:`Categorical`).
- :mod:`.objective`: :class:`Objective`.
- :mod:`.results`: :class:`Evaluation`, :class:`SearchResult`, :func:`pareto_front`.
- :mod:`.storage`: the durable records, the folder lock, :func:`load`.
- :mod:`.run`: :func:`search`.
"""
