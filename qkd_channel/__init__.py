"""B92 quantum key distribution: the link physics, eavesdroppers and post-processing.

Pure cores (no I/O): ``channel`` (numpy link), ``eve`` (attacks), ``estimation``,
``cascade``, ``verification``, ``toeplitz`` / ``amplification``, ``confirmation``,
``messages`` (HMAC frames), ``alice`` / ``bob`` (state machines), ``driver`` and
``simulation`` (in memory).  ``qiskit_backend`` runs the same link on qiskit-aer.
"""
