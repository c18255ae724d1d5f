"""The exercise checks, one module per notebook: the properties and inputs that a notebook's test
cells pass to :func:`lecture13.exercises.check` and :func:`lecture13.exercises.assert_passes`.

* :mod:`lecture13.checks.gans`: notebook 04 (generative adversarial networks).

A check says what is wrong in the lecture's terms: the input it tried, what was expected and
what came back, and a hint for the usual mistake (found by comparing the answer with the
mistakes' own results). The model modules (``lecture13.gan``, ``lecture13.toy`` …) hold the
references; nothing here is needed to train or use a model.
"""
