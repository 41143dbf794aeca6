"""Running a pretraining: preset schema, device and precision, DDP, RNG, checkpoints, resume, logs.

Modules: `config` (the typed preset schema, `load_preset`), `train` (`pretrain`, the one loop),
`checkpoint` (`save_checkpoint`, `load_encoder`), `rundir` (the run directory), `precision`,
`distributed`, `knn` (the weighted-kNN monitor). Importing this package imports nothing heavy.
"""
