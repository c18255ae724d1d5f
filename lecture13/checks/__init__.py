"""The exercise checks, one module per notebook: the properties and inputs that a notebook's test
cells pass to :func:`lecture13.exercises.check` and :func:`lecture13.exercises.assert_passes`.

* :mod:`lecture13.checks.generative_models`: notebook 00 (the factorized model);
* :mod:`lecture13.checks.autoregressive`: notebook 01 (the masked convolution, completion and the
  256-way NLL; its first exercises' checks are in :mod:`lecture13.autoregressive` and
  :mod:`lecture13.sampling`);
* :mod:`lecture13.checks.autoencoders`: notebook 02 (autoencoders);
* :mod:`lecture13.checks.vae`: notebook 03 (variational autoencoders: the training step, the KL per latent
  dimension and the active units; its first exercises are checked against the reference's cases);
* :mod:`lecture13.checks.gans`: notebook 04 (generative adversarial networks);
* :mod:`lecture13.checks.dcgan`: notebook 05 (DCGAN);
* :mod:`lecture13.checks.flows`: notebook 07 (the affine coupling layer's inverse and log-determinant);
* :mod:`lecture13.checks.diffusion`: notebook 07 (q(x_t | x_0), the noise-prediction loss, one reverse
  step; the references with the exercises' signatures are there too).

The other notebooks' exercises are checked by comparing with the reference on the test cells' cases.

A check says what is wrong in the lecture's terms: the input it tried, what was expected and
what came back, and a hint for the usual mistake (found by comparing the answer with the
mistakes' own results). The model modules (``lecture13.gan``, ``lecture13.toy`` …) hold the
references; nothing here is needed to train or use a model.
"""
