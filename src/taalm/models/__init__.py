"""Models: loading a base model by alias, name, folder or GGUF; the Train-Attention model φ.

Layer 3 (imports core and data). φ stands here, below both continual learning (which applies its
weights) and meta-training (which trains it)."""
