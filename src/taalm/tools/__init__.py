"""Tools: the library behind ``taalm data``, ``taalm eval`` and ``taalm weights``, one module per
command, so a notebook calls what the command line calls:

==========================  ====================================================================
``taalm data tailor``       :func:`taalm.tools.tailor.tailor` (LAMA-ckl scored by a base model)
``taalm data pool``         :func:`taalm.tools.pool.build_pool` (a φ pool from LAMA T-REx facts;
                            invented-entity copies: :mod:`taalm.tools.invent`)
``taalm eval``              :func:`taalm.tools.evaluate.evaluate_model` (model + adapter on probes)
``taalm weights``           :func:`taalm.tools.weights.token_weights` (a method's token weights)
==========================  ====================================================================

Layer 6: above :mod:`taalm.ckl` (an adapter is a saved θ, a weighting method is ckl's), which is
why these are not in :mod:`taalm.data` (layer 2) or :mod:`taalm.evaluation` (layer 4), whose
functions they call; below :mod:`taalm.bench`, which reuses the model fingerprint of tailoring.
Nothing is imported here, so ``import taalm.tools.invent`` stays free of torch.
"""
