"""eBPF capture source: BPF C (``*.bpf.c``, ``events.h``), its decoder and the bcc loader.

Only :mod:`.loader` imports bcc; everything else here imports anywhere.
"""
