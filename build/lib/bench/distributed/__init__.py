"""Data-parallel runs: how many replicas and where (layout), the processes (launcher), and the engines.

The split of Keras's own ``keras/src/distribution/``: ``engine.py`` is the backend-agnostic front,
``jax.py``, ``tensorflow.py`` and ``torch.py`` each hold one framework's primitives (the only modules
here that import a framework), and the backend's adapter names which one runs. Importing this package
imports nothing: ``bench.settings`` reads ``layout`` without loading the engines.
"""
