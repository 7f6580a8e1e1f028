"""Meta-training of φ: functional θ, the meta-gradient engines, the meta-training loop.
Layer 6 (everything below, ckl included: validation runs the CKL learner)."""
