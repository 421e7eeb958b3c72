"""SLURM: the batch scripts beside it, and `slurm.job`, what a SLURM job tells spangpt (host lists, the head node, the rendezvous port)."""
